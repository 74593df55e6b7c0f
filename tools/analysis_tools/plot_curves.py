#!/usr/bin/env python
"""Plot loss/metric curves of one or more work dirs (mmengine's scalar logs) to a PNG.

Reads every ``<work_dir>/<timestamp>/vis_data/scalars.json`` (or the
``<timestamp>.json`` beside it) in time order, so a resumed run continues its curve.

Usage: python tools/analysis_tools/plot_curves.py WORK_DIR [WORK_DIR ...]
           [--keys loss distill.loss_kd] [--out curves.png]
"""
import argparse
import glob
import json
import os.path as osp


def read_scalars(work_dir):
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dirs', nargs='+')
    parser.add_argument('--keys', nargs='+', default=None,
                        help='scalars to plot (default: every key containing "loss")')
    parser.add_argument('--out', default='curves.png')
    args = parser.parse_args(argv)
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    runs = {wd: read_scalars(wd) for wd in args.work_dirs}
    keys = args.keys or sorted({k for rows in runs.values() for r in rows for k in r if 'loss' in k})
    fig, axes = plt.subplots(len(keys), 1, figsize=(7, 2.4 * len(keys)), squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        for wd, rows in runs.items():
            pts = [(r.get('step', r.get('iter')), r[key]) for r in rows if key in r]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, label=osp.basename(osp.normpath(wd)))
        ax.set_ylabel(key, fontsize=8)
        ax.legend(fontsize=7)
    axes[-1, 0].set_xlabel('step')
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f'wrote {args.out} ({", ".join(keys)})')


if __name__ == '__main__':
    main()
