#!/usr/bin/env python
"""TinyCLIP weight inheritance: make the checkpoint a student starts from.

Three commands (the checkpoints they write are ``OpenCLIPModel`` checkpoints,
``{'state_dict': {'clip.<open_clip key>': ...}, 'meta': {...}}``, loaded by the
student's ``init_checkpoint``):

``manual SRC_CONFIG SRC_CKPT DST_CONFIG OUT [--src-part student|teacher]``
    Manual inheritance: build the source model of ``SRC_CONFIG`` (a plain model
    config, or the student / ``--src-part teacher`` the teacher of a distillation
    config), load ``SRC_CKPT`` (plain, or an mmkd distillation checkpoint), build the
    student of ``DST_CONFIG`` and copy into it TinyCLIP's uniform layer choice and
    front slices of widths/heads. First stage: the source is the teacher; later
    stages of a progressive chain: the previous stage's student.

``prune CONFIG CKPT OUT``
    Automatic inheritance, end of the mask phase: build the masked student of
    ``CONFIG`` (an ``OpenCLIPModel`` with ``sparsity=...``), load the mask-phase
    checkpoint ``CKPT``, take the deterministic masks and prune the model into a
    dense smaller CLIP. ``OUT`` records the structure in ``meta.clip_structure``; the
    next config builds it with ``pruned_structure=OUT, init_checkpoint=OUT``.

``convert-open-clip MODEL_NAME PRETRAINED OUT``
    Save an open_clip pretrained model (``ViT-B-32`` ``laion2b_e16``; downloaded by
    open_clip on first use) as an ``OpenCLIPModel`` checkpoint, e.g. a teacher_ckpt.

Examples::

    python tools/model_converters/tinyclip_inherit.py manual \\
        configs/tinyclip/clip_vit-w64-d4_text-w64-d4_digits-shapes_demo.py \\
        work_dirs/tinyclip_demo/teacher.pth \\
        configs/tinyclip/clip_vit-w32-d4_text-w64-d2_digits-shapes_scratch_demo.py \\
        work_dirs/tinyclip_demo/student_inherited.pth
"""
import argparse
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def build_clip_model(config: str, what: str, part: str = 'student'):
    """The ``OpenCLIPModel`` of a config: the model of a plain config; the student
    (``part='student'``) or the teacher (``part='teacher'``) of a distillation config."""
    from mmengine.config import Config

    from mmkd.utils import build_task_model, register_all_modules
    register_all_modules()
    if not osp.isfile(config):
        raise SystemExit(f'error: {what} config {config!r} does not exist')
    cfg = Config.fromfile(config)
    model_cfg = dict(cfg.model)
    if 'architecture' in model_cfg:  # a distillation config
        model_cfg = dict(model_cfg['architecture' if part == 'student' else 'teacher'])
    elif part == 'teacher':
        raise SystemExit(f'error: --src-part teacher needs a distillation config; {config!r} is not')
    if 'cfg_path' not in model_cfg and '_scope_' not in model_cfg:
        model_cfg['_scope_'] = cfg.get('default_scope', 'mmkd')
    model, _ = build_task_model(model_cfg, key=f'{what} model')
    from mmkd.models.task_models import OpenCLIPModel
    if not isinstance(model, OpenCLIPModel):
        raise SystemExit(f'error: {config!r} builds a {type(model).__name__}, not an OpenCLIPModel')
    return model


def load_clip_weights(model, ckpt: str, what: str) -> None:
    from mmkd.models.task_models.open_clip_model import _load_clip_state
    state = _load_clip_state(ckpt, what)
    # a mask-phase checkpoint also holds the masks (l0_masks.*) next to clip.*
    from mmkd.utils.checkpoint import load_state_dict_file
    full = load_state_dict_file(ckpt, what)
    prefix = 'architecture.' if any(k.startswith('architecture.') for k in full) else ''
    masks = {k[len(prefix + 'l0_masks.'):]: v for k, v in full.items()
             if k.startswith(prefix + 'l0_masks.')}
    missing, unexpected = model.clip.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise SystemExit(f'error: {what}={ckpt!r} does not match its config: missing {missing[:8]}, '
                         f'unexpected {unexpected[:8]}')
    if model.l0_masks is not None:
        if not masks:
            raise SystemExit(f'error: {what}={ckpt!r} holds no l0_masks.* weights: it is not a '
                             'mask-phase checkpoint of this config')
        model.l0_masks.load_state_dict(masks, strict=True)


def save(state_dict: dict, meta: dict, out: str) -> None:
    from convert_kd_ckpt_to_student import atomic_torch_save
    atomic_torch_save({'state_dict': {f'clip.{k}': v.detach().cpu().clone() for k, v in state_dict.items()},
                       'meta': meta}, out)


def cmd_manual(args) -> dict:
    from mmkd.models.surgery.clip_inheritance import inherit_clip_weights
    source = build_clip_model(args.src_config, 'SRC_CONFIG', args.src_part)
    load_clip_weights(source, args.src_ckpt, 'SRC_CKPT')
    student = build_clip_model(args.dst_config, 'DST_CONFIG')
    report = inherit_clip_weights(student.clip, source.clip)
    meta = dict(tinyclip='manual inheritance', source_config=args.src_config,
                source_ckpt=args.src_ckpt, student_config=args.dst_config, **report)
    save(student.clip.state_dict(), meta, args.out)
    return meta


def cmd_prune(args) -> dict:
    import torch
    model = build_clip_model(args.config, 'CONFIG')
    if model.l0_masks is None:
        raise SystemExit(f'error: the student of {args.config!r} has no sparsity masks; give the '
                         'mask-phase config (OpenCLIPModel(sparsity=dict(...)))')
    load_clip_weights(model, args.ckpt, 'CKPT')
    model.eval()
    with torch.no_grad():
        expected = float(model.l0_masks.expected_sparsity())
    pruned = model.prune()
    from mmkd.models.surgery.clip_structure import structure_of
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    meta = dict(tinyclip='automatic inheritance (pruned)', source_config=args.config,
                source_ckpt=args.ckpt, clip_structure=structure_of(pruned),
                full_structure=structure_of(model.clip), expected_sparsity=expected,
                params=(count(pruned), count(model.clip)))
    save(pruned.state_dict(), meta, args.out)
    return meta


def cmd_convert(args) -> dict:
    from mmkd.models.task_models import OpenCLIPModel
    model = OpenCLIPModel(model_name=args.model_name, pretrained=args.pretrained)
    meta = dict(open_clip_model=args.model_name, pretrained=args.pretrained)
    save(model.clip.state_dict(), meta, args.out)
    return meta


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    p = sub.add_parser('manual', help='manual inheritance (uniform layers, front slices)')
    p.add_argument('src_config')
    p.add_argument('src_ckpt')
    p.add_argument('dst_config')
    p.add_argument('out')
    p.add_argument('--src-part', choices=('student', 'teacher'), default='student',
                   help='which model of a distillation SRC_CONFIG to inherit from (default: its '
                   'student, i.e. the previous stage; "teacher" for the first stage)')
    p = sub.add_parser('prune', help='prune a mask-phase student into a dense smaller CLIP')
    p.add_argument('config')
    p.add_argument('ckpt')
    p.add_argument('out')
    p = sub.add_parser('convert-open-clip', help='open_clip pretrained weights -> OpenCLIPModel ckpt')
    p.add_argument('model_name')
    p.add_argument('pretrained')
    p.add_argument('out')
    args = parser.parse_args(argv)
    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
    for name in ('src_ckpt', 'ckpt'):
        path = getattr(args, name, None)
        if path is not None and not osp.isfile(path):
            raise SystemExit(f'error: {path!r} does not exist')
    meta = {'manual': cmd_manual, 'prune': cmd_prune, 'convert-open-clip': cmd_convert}[args.command](args)
    shown = {k: v for k, v in meta.items() if k != 'full_structure'}
    print(json.dumps(shown, indent=1, default=str))
    print(f'saved {args.out}')
    return meta


if __name__ == '__main__':
    from mmkd.engine.runner_checkpoints import run_cli
    run_cli(main)
