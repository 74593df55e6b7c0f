#!/usr/bin/env python
"""Teacher and student feature maps side by side, for one image, as a PNG.

The maps are the tensors the distillation config records (its ``student_recorders`` and
``teacher_recorders``): one row per recorded tensor pair (an FPN recorder gives one row
per level), three panels per row: the input image, the teacher's map and the student's
map, each reduced over channels (``--reduce``: L2 norm by default) and laid over the
image. ``--connector`` shows the student tensor after the connector the losses apply.
Each map panel has its own colour scale (a colorbar in the reduced feature's units: the
teacher's and the student's maps differ in scale, so they are not normalised together).

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


def show_map(fig, ax, image, tensor, reduce: str, title: str, alpha: float = 0.55,
             cmap: str = 'jet'):
    """A feature map laid over ``image`` with a colorbar of its values (the channel
    reduction of the tensor, not rescaled); a vector (logits) is drawn as bars with a
    value axis instead. Returns the colorbar or None."""
    from matplotlib.ticker import MaxNLocator
    if tensor.dim() == 2:
        di.show_tensor(ax, image, tensor, reduce, title)
        ax.yaxis.set_major_locator(MaxNLocator(4))
        ax.tick_params(axis='y', labelsize=6, pad=1)
        return None
    heat = di.spatial_map(tensor, reduce)
    lo, hi = float(heat.min()), float(heat.max())
    if hi <= lo:  # a constant map: give the scale a width so its one value shows
        hi = lo + max(abs(lo), 1.0) * 1e-6
    ax.imshow(image, cmap='gray' if image.ndim == 2 else None, vmin=0, vmax=1)
    im = ax.imshow(di.resize_to(heat, image.shape[:2]), cmap=cmap, alpha=alpha, vmin=lo, vmax=hi)
    ax.set_title(title, fontsize=7)
    colorbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    colorbar.ax.tick_params(labelsize=6)
    colorbar.locator = MaxNLocator(4)
    colorbar.update_ticks()
    return colorbar


def draw(rows, image, reduce: str, title: str, input_label: str = ''):
    """The figure: per row the input, the teacher's and the student's map. ``rows`` are
    ``(label, teacher tensor, student tensor, student suffix)``. Returns ``(fig, colorbars)``
    with ``colorbars[i] = (teacher's, student's)`` (None for a vector)."""
    fig, axes = di.figure(len(rows), 3, PANEL_PX, TITLE_PX)
    fig.suptitle(title, fontsize=8)
    # room for each map's colorbar and its tick labels (the PNG keeps its size)
    fig.subplots_adjust(left=0.01, right=0.95, wspace=0.3)
    colorbars = []
    for (label, t, s, suffix), ax in zip(rows, axes):
        di.show_overlay(ax[0], image, None, f'input {input_label}')
        colorbars.append((
            show_map(fig, ax[1], image, t, reduce, f'teacher {label} {tuple(t.shape[1:])}'),
            show_map(fig, ax[2], image, s, reduce, f'student {label}{suffix} {tuple(s.shape[1:])}')))
    return fig, colorbars


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

    fig, _ = draw(rows, image, args.reduce,
                  f'{osp.basename(args.config)}  ({args.reduce} over channels)',
                  args.image if ':' in args.image else '')
    print(f'wrote {di.save(fig, args.out)} ({len(rows)} rows)')
    return args.out


if __name__ == '__main__':
    main()
