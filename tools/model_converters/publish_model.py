#!/usr/bin/env python
"""Publish a checkpoint as OpenMMLab does: weights only, file name with a hash.

For an mmkd distillation checkpoint the student is kept (``architecture.`` prefix
removed; connectors, learnable loss parts, optimizer, schedulers and message hub
dropped), so the result loads into the plain task model. A plain task checkpoint
keeps its state dict. The output is ``OUT_STEM-<first 8 hex of sha256>.pth``.

Usage: python tools/model_converters/publish_model.py IN.pth OUT.pth [--keep-distiller]
"""
import argparse
import hashlib
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))


def main(argv=None):
    parser = argparse.ArgumentParser(description='Publish a student checkpoint')
    parser.add_argument('src')
    parser.add_argument('dst', help='output path; the hash is added before .pth')
    parser.add_argument('--keep-distiller', action='store_true',
                        help='keep the whole algorithm state dict (connectors included)')
    args = parser.parse_args(argv)
    from convert_kd_ckpt_to_student import atomic_torch_save, convert

    from mmkd.utils.checkpoint import safe_torch_load
    if not osp.isfile(args.src):
        raise SystemExit(f'error: {args.src!r} does not exist')
    ckpt = safe_torch_load(args.src)
    state = ckpt.get('state_dict', ckpt)
    if not args.keep_distiller and any(k.startswith('architecture.') for k in state):
        state = convert(state)
    meta = {k: v for k, v in (ckpt.get('meta') or {}).items()
            if k in ('epoch', 'iter', 'mmengine_version', 'dataset_meta', 'seed')}
    tmp = args.dst + '.unhashed'
    atomic_torch_save({'state_dict': state, 'meta': meta}, tmp)
    with open(tmp, 'rb') as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:8]
    stem = args.dst[:-4] if args.dst.endswith('.pth') else args.dst
    final = f'{stem}-{digest}.pth'
    os.replace(tmp, final)
    print(final)
    return final


if __name__ == '__main__':
    main()
