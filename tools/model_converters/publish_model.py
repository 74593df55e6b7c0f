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
    parser.add_argument('--student', default=None,
                        help='a checkpoint with several students (CollaborativeDistill): the '
                        'one to publish')
    args = parser.parse_args(argv)
    from convert_kd_ckpt_to_student import atomic_torch_save, student_state

    from mmkd.utils.checkpoint import CheckpointFileError, UnsafeCheckpointError
    from mmkd.utils.checkpoint_kinds import read_checkpoint
    try:
        info = read_checkpoint(args.src, 'src')
        state = info.state
        if not args.keep_distiller and (info.kind in ('distillation', 'multi_student')
                                        or args.student):
            state = student_state(info, student=args.student)
    except (FileNotFoundError, CheckpointFileError, UnsafeCheckpointError, ValueError) as err:
        raise SystemExit(f'error: {err}') from None
    meta = {k: v for k, v in info.meta.items()
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
    from mmkd.engine.runner_checkpoints import run_cli
    run_cli(main)
