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
import os.path as osp
import sys

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
    """Write to a temp file in the same directory, then rename: never a half file.

    The file gets the process umask's permissions, like ``torch.save(obj, path)``
    (:func:`mmkd.engine.atomic_torch_save`).
    """
    from mmkd.engine.atomic_backend import atomic_torch_save as save
    save(obj, path)


def student_state(info, prefix: str = 'architecture.', student=None) -> dict:
    """The student's tensors of a checkpoint read by ``mmkd.utils.checkpoint_kinds``.

    Refuses, naming the file and what it holds, a checkpoint that is already a plain
    task model or a converted student (nothing to convert), one with several students
    and no ``--student``, and an unknown ``--student``.
    """
    if student is not None:
        if info.kind != 'multi_student':
            raise ValueError(f'--student {student!r}: {info.shown} is {info.describe()}, which '
                             'holds one student, not several; drop --student')
        if student not in info.students:
            raise ValueError(f'--student {student!r} is not in {info.shown}; its students are '
                             f'{info.students}')
        prefix = f'students.{student}.'
    elif info.kind == 'multi_student' and prefix == 'architecture.':
        raise ValueError(f'{info.shown} is {info.describe()}: pass --student NAME, one of '
                         f'{info.students}')
    elif info.kind in ('task_model', 'converted_student') and prefix == 'architecture.':
        raise ValueError(
            f'{info.shown} is {info.describe()}: the task package (and tools/test.py) loads it '
            'as it is; there is nothing to convert. Pass an mmkd distillation checkpoint (e.g. '
            'work_dirs/NAME/iter_N.pth).')
    try:
        return convert(info.state, prefix)
    except ValueError as err:
        raise ValueError(f'{info.shown}: {err}') from None


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
    from mmkd.utils.checkpoint import CheckpointFileError, UnsafeCheckpointError
    from mmkd.utils.checkpoint_kinds import read_checkpoint
    try:
        info = read_checkpoint(args.src, 'src')
        student = student_state(info, args.prefix if not args.student else 'architecture.',
                                args.student)
    except (FileNotFoundError, CheckpointFileError, UnsafeCheckpointError, ValueError) as err:
        raise SystemExit(f'error: {err}') from None
    meta = dict(info.meta)
    out_meta = {k: meta[k] for k in ('epoch', 'iter', 'seed', 'dataset_meta', 'mmengine_version')
                if k in meta}
    out_meta['converted_from'] = osp.basename(args.src)
    atomic_torch_save({'state_dict': student, 'meta': out_meta}, args.dst)
    print(f'wrote {len(student)} student tensors to {args.dst}')


if __name__ == '__main__':
    from mmkd.engine.runner_checkpoints import run_cli
    run_cli(main)
