#!/usr/bin/env python
"""Turn an mmkd distillation checkpoint into a plain student checkpoint.

The output holds only the student's weights (``architecture.`` prefix removed; no
connectors, no learnable loss parameters, no optimizer or runtime state) and loads
into the plain task model (mmpretrain/mmdet/mmseg) with ``strict=True``.

Usage::

    python tools/model_converters/convert_kd_ckpt_to_student.py IN.pth OUT.pth
    # an algorithm with several students (CollaborativeDistill): pick one
    python tools/model_converters/convert_kd_ckpt_to_student.py IN.pth OUT.pth --student vit
"""
import argparse
import os
import os.path as osp
import sys
import tempfile

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def convert(state_dict: dict, prefix: str = 'architecture.') -> dict:
    student = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    if not student:
        prefixes = sorted({k.split('.', 1)[0] for k in state_dict})
        students = sorted({k.split('.')[1] for k in state_dict if k.startswith('students.')})
        hint = f' It holds several students {students}: pass --student NAME.' if students else ''
        raise ValueError(f'no key starts with {prefix!r}; top-level prefixes are {prefixes}. '
                         f'Is this an mmkd distillation checkpoint?{hint}')
    return student


def atomic_torch_save(obj, path: str) -> None:
    """Write to a temp file in the same directory, then rename: never a half file."""
    import torch
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix='.tmp-', suffix='.pth')
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(obj, f)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='mmkd checkpoint (e.g. work_dirs/x/epoch_12.pth)')
    parser.add_argument('dst', help='output student checkpoint')
    parser.add_argument('--prefix', default='architecture.',
                        help='prefix of the student in the algorithm (default: architecture.)')
    parser.add_argument('--student', default=None,
                        help='for algorithms with several students (e.g. CollaborativeDistill: '
                        'cnn or vit): extract students.<STUDENT>. (overrides --prefix)')
    args = parser.parse_args(argv)
    if args.student:
        args.prefix = f'students.{args.student}.'
    from mmkd.utils.checkpoint import safe_torch_load
    if not osp.isfile(args.src):
        raise SystemExit(f'error: {args.src!r} does not exist')
    ckpt = safe_torch_load(args.src)
    state = ckpt.get('state_dict', ckpt)
    student = convert(state, args.prefix)
    meta = dict(ckpt.get('meta', {}) or {})
    out_meta = {k: meta[k] for k in ('epoch', 'iter', 'seed', 'dataset_meta', 'mmengine_version')
                if k in meta}
    out_meta['converted_from'] = osp.basename(args.src)
    atomic_torch_save({'state_dict': student, 'meta': out_meta}, args.dst)
    print(f'wrote {len(student)} student tensors to {args.dst}')


if __name__ == '__main__':
    main()
