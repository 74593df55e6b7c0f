#!/usr/bin/env python
"""Plot loss/metric curves of one or more work dirs (mmengine's scalar logs) to a PNG.

Reads every ``<work_dir>/<timestamp>/vis_data/scalars.json`` (or the
``<timestamp>.json`` beside it) in time order, so a resumed run continues its curve.
Training rows (they carry ``iter``, ``lr`` or a loss) give the loss panels; validation rows (the metrics
mmengine logs after each validation, e.g. ``accuracy/top1``, ``coco/bbox_mAP``) give one
panel per metric. mmengine stamps a validation row with the epoch (0 for iteration-based
runs), so it is drawn at the step of the last training row logged before it.

Usage: python tools/analysis_tools/plot_curves.py WORK_DIR [WORK_DIR ...]
           [--keys loss distill.loss_kd accuracy/top1] [--out curves.png]
"""
import argparse
import glob
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

# keys of a validation row that are not metrics
NOT_METRICS = {'data_time', 'time', 'step', 'epoch', 'iter', 'memory'}
Curve = Tuple[List[float], List[float]]


def read_scalars(work_dir: str) -> List[dict]:
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not files:
        files = sorted(glob.glob(osp.join(work_dir, '*', '*.json')))
    if not files:
        raise SystemExit(f'error: no scalar logs under {work_dir!r} (expected '
                         '<timestamp>/vis_data/scalars.json from a tools/train.py run)')
    rows = []
    for path in files:
        with open(path) as f:
            rows += [json.loads(line) for line in f if line.strip()]
    return rows


def split_rows(rows: Sequence[dict]) -> Tuple[List[Tuple[float, dict]], List[Tuple[float, dict]]]:
    """(train, val) rows as (x, row): x is the training step; a validation row (metrics
    only) gets the step of the last training row before it (0 when it comes first)."""
    train, val, last_step = [], [], 0
    for row in rows:
        # mmengine's training rows carry `iter` (and `lr`, losses); validation rows do not
        if 'iter' in row or 'lr' in row or any('loss' in k for k in row):
            last_step = row.get('step', row.get('iter', last_step))
            train.append((last_step, row))
        elif set(row) - NOT_METRICS:
            val.append((last_step, row))
    return train, val


def collect_curves(runs: Dict[str, List[dict]], keys: Optional[Sequence[str]] = None
                   ) -> Dict[str, Dict[str, Dict[str, Curve]]]:
    """``{'train': {key: {work_dir: (xs, ys)}}, 'val': {...}}`` for the panels to draw.

    Without ``keys``: every training key containing ``loss`` and every validation metric.
    A key given in ``keys`` is looked up among the training keys and the metrics."""
    split = {wd: split_rows(rows) for wd, rows in runs.items()}
    train_keys = sorted({k for tr, _ in split.values() for _, r in tr for k in r if k not in NOT_METRICS})
    val_keys = sorted({k for _, va in split.values() for _, r in va for k in r if k not in NOT_METRICS})
    if keys is None:
        wanted = dict(train=[k for k in train_keys if 'loss' in k], val=val_keys)
    else:
        unknown = [k for k in keys if k not in train_keys and k not in val_keys]
        if unknown:
            raise SystemExit(f'error: --keys {unknown} are not in the logs; training keys: '
                             f'{train_keys}, validation metrics: {val_keys}')
        wanted = dict(train=[k for k in keys if k in train_keys],
                      val=[k for k in keys if k in val_keys and k not in train_keys])
    curves = {}
    for part, index in (('train', 0), ('val', 1)):
        curves[part] = {}
        for key in wanted[part]:
            per_run = {}
            for wd, parts in split.items():
                pts = [(x, r[key]) for x, r in parts[index] if key in r]
                if pts:
                    xs, ys = zip(*pts)
                    per_run[wd] = (list(xs), list(ys))
            curves[part][key] = per_run
    return curves


def panel_names(curves) -> List[str]:
    return list(curves['train']) + [f'val {k}' for k in curves['val']]


def draw(curves):
    """One panel per training key, then one per validation metric; returns the figure."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    panels = [(k, v, False) for k, v in curves['train'].items()] + \
             [(f'val {k}', v, True) for k, v in curves['val'].items()]
    if not panels:
        raise SystemExit('error: nothing to plot (no loss keys and no validation metrics)')
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 2.4 * len(panels)), squeeze=False)
    for ax, (name, per_run, is_val) in zip(axes[:, 0], panels):
        for wd, (xs, ys) in per_run.items():
            ax.plot(xs, ys, marker='o' if is_val else None, markersize=4,
                    label=osp.basename(osp.normpath(wd)))
        ax.set_ylabel(name, fontsize=8)
        if per_run:
            ax.legend(fontsize=7)
    axes[-1, 0].set_xlabel('step')
    fig.tight_layout()
    return fig


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dirs', nargs='+')
    parser.add_argument('--keys', nargs='+', default=None,
                        help='scalars to plot, training keys or validation metrics (default: '
                             'every training key containing "loss" and every validation metric)')
    parser.add_argument('--out', default='curves.png')
    args = parser.parse_args(argv)
    runs = {wd: read_scalars(wd) for wd in args.work_dirs}
    curves = collect_curves(runs, args.keys)
    fig = draw(curves)
    fig.savefig(args.out, dpi=110)
    import matplotlib.pyplot as plt
    plt.close(fig)
    if not curves['val'] and args.keys is None:
        print('note: no validation metrics in the logs (validation did not run yet, or '
              'train_cfg.val_interval is larger than the run)')
    print(f'wrote {args.out} ({", ".join(panel_names(curves))})')
    return curves


if __name__ == '__main__':
    main()
