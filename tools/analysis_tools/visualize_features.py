#!/usr/bin/env python
"""Teacher and student feature maps side by side, for one image, as a PNG.

The maps are the tensors the distillation config records (its ``student_recorders`` and
``teacher_recorders``): one row per recorded tensor pair (an FPN recorder gives one row
per level), three panels per row: the input image, the teacher's map and the student's
map, each reduced over channels (``--reduce``: L2 norm by default) and laid over the
image. ``--connector`` shows the student tensor after the connector the losses apply.

Usage:
    python tools/analysis_tools/visualize_features.py CONFIG IMAGE [--checkpoint CKPT]
        [--recorders NAME ...] [--reduce l2|mean|absmean|max] [--connector]
        [--teacher-ckpt PATH|none] [--out features.png] [--cfg-options k=v ...]

IMAGE is a file (run through the config's test pipeline) or SPLIT:INDEX (``val:0``) for a
sample of the config's data set. CHECKPOINT is a ``tools/train.py`` checkpoint (student and
connectors) or a student-only one; without it the student has its initial weights.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

import distill_inspect as di  # noqa: E402
from mmengine.config import DictAction  # noqa: E402

PANEL_PX = 240
TITLE_PX = 30


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('image', help='image file, or SPLIT:INDEX such as val:0')
    parser.add_argument('--checkpoint', help='trained algorithm or student checkpoint')
    parser.add_argument('--teacher-ckpt', help="override model.teacher_ckpt ('none': random)")
    parser.add_argument('--recorders', nargs='+',
                        help='recorder names present on both sides (default: all such)')
    parser.add_argument('--reduce', default='l2', choices=['l2', 'mean', 'absmean', 'max'])
    parser.add_argument('--connector', action='store_true',
                        help='apply the connector the loss mappings use on that student recorder')
    parser.add_argument('--out', default='features.png')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def student_connectors(distiller):
    """Student recorder name -> connector name, from the loss mappings (first one wins)."""
    found = {}
    for mapping in distiller.loss_forward_mappings.values():
        for source in mapping.values():
            if source.get('from_student') and source.get('connector'):
                found.setdefault(source['recorder'], source['connector'])
    return found


def main(argv=None):
    args = parse_args(argv)
    import torch
    cfg = di.load_config(args.config, args.cfg_options, args.teacher_ckpt)
    model = di.build_model(cfg, args.checkpoint)
    batch, image = di.image_batch(cfg, args.image)
    di.record(model, batch)
    distiller = model.distiller
    s_names = set(distiller.student_recorders.recorders)
    t_names = set(distiller.teacher_recorders.recorders)
    names = args.recorders or sorted(s_names & t_names)
    bad = [n for n in names if n not in s_names or n not in t_names]
    if bad or not names:
        raise SystemExit(f'error: recorders {bad or names} are not on both sides; student: '
                         f'{sorted(s_names)}, teacher: {sorted(t_names)}')
    connectors = student_connectors(distiller) if args.connector else {}

    rows = []  # (label, teacher tensor, student tensor, student suffix)
    for name in names:
        t_items = di.recorded(distiller.teacher_recorders, name)
        s_items = di.recorded(distiller.student_recorders, name)
        if len(t_items) != len(s_items):
            raise SystemExit(f'error: recorder {name!r} captured {len(t_items)} teacher and '
                             f'{len(s_items)} student tensors; cannot pair them')
        for (label, t), (_, s) in zip(t_items, s_items):
            suffix = ''
            if name in connectors:
                with torch.no_grad():
                    s = distiller.connectors[connectors[name]](s.float())
                suffix = f' -> {connectors[name]}'
            rows.append((label, t, s, suffix))

    fig, axes = di.figure(len(rows), 3, PANEL_PX, TITLE_PX)
    fig.suptitle(f'{osp.basename(args.config)}  ({args.reduce} over channels)', fontsize=8)
    for (label, t, s, suffix), ax in zip(rows, axes):
        di.show_overlay(ax[0], image, None, f'input {args.image if ":" in args.image else ""}')
        di.show_tensor(ax[1], image, t, args.reduce, f'teacher {label} {tuple(t.shape[1:])}')
        di.show_tensor(ax[2], image, s, args.reduce, f'student {label}{suffix} {tuple(s.shape[1:])}')
    print(f'wrote {di.save(fig, args.out)} ({len(rows)} rows)')
    return args.out


if __name__ == '__main__':
    main()
