#!/usr/bin/env python
"""Gains of each distillation method over the student alone, over several seeds.

For every requested method this trains, through the ordinary CLI (tools/train.py,
then tools/test.py on the last checkpoint):
  1. the teacher once (its config's own seed) per task;
  2. for each seed: the student alone and the distilled student, with the same
     schedule and seed (``randomness.seed``);
then prints, and writes as JSON and markdown, mean +- std (sample std, n-1) of the
metric per row and of the gain (distilled - alone, paired by seed), with the verdict
"gain > 1 std" when the mean gain exceeds its own spread.

A student-alone run depends only on the student config and the seed, so methods that
share a student (e.g. KD, DKD and FitNet on digits) share its runs. Every result is
recorded in ``<work-dir>/runs.json`` as it arrives; ``--resume`` reuses the recorded
teachers and runs (e.g. after an interrupted call), without it every run is made afresh.

Methods: the single-teacher demos (digits: kd, dkd, fitnet; shapes detection:
fitnet-det, mgd-det, acam-det; shapes segmentation: cwd-seg, mgd-seg, acam-seg).
The multi-stage pipelines (MST-Distill, MGD-SSSS, HFD/BSD, G2SD/DMAE, TinyCLIP,
LLaVA-KD/MoD) have their own drivers in tools/demo/ and are not run here yet.

Usage:
  python tools/demo/method_gains.py [--methods kd dkd ...] [--seeds 0 1 2]
      [--resume] [--work-dir work_dirs/gains] [--quick]
  --quick: the kd method, 2 seeds, 60 iterations (a smoke run for CI-sized checks).
"""
import argparse
import json
import os
import os.path as osp
import statistics
import sys
import time

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from common import ROOT, install_checkpoint, train_and_test  # noqa: E402

DIGITS = dict(metric='accuracy/top1', data='digits',
              teacher='configs/kd/teacher_resnet18-w32_digits_demo.py',
              student='configs/kd/student_resnet18-w8_digits-10pct_demo.py')
SHAPES_DET = dict(metric='coco/bbox_mAP', data='shapes',
                  teacher='configs/task_models/retinanet_r18_fpn_shapes_demo.py',
                  student='configs/task_models/retinanet_r18-w16_fpn_shapes_demo.py')
SHAPES_SEG = dict(metric='mIoU', data='shapes',
                  teacher='configs/task_models/fcn_r18_shapes_demo.py',
                  student='configs/task_models/fcn_r18-w16_shapes_demo.py')

#: method -> (task, distilled config). The teacher checkpoint is passed as
#: ``model.teacher_ckpt``.
METHODS = {
    'kd': (DIGITS, 'configs/kd/kd_logits_resnet18-w32_resnet18-w8_digits-10pct_demo.py'),
    'dkd': (DIGITS, 'configs/dkd/dkd_resnet18-w32_resnet18-w8_digits-10pct_demo.py'),
    'fitnet': (DIGITS, 'configs/fitnet/fitnet_resnet18-w32_resnet18-w8_digits-10pct_demo.py'),
    'fitnet-det': (SHAPES_DET,
                   'configs/fitnet/fitnet_fpn_retinanet-r18_retinanet-r18-w16_shapes_demo.py'),
    'mgd-det': (SHAPES_DET, 'configs/mgd/mgd_fpn_retinanet-r18_retinanet-r18-w16_shapes_demo.py'),
    'acam-det': (SHAPES_DET,
                 'configs/acam_kd/acam-kd_fpn_retinanet-r18_retinanet-r18-w16_shapes_demo.py'),
    'cwd-seg': (SHAPES_SEG, 'configs/cwd/cwd_logits_fcn-r18_fcn-r18-w16_shapes_demo.py'),
    'mgd-seg': (SHAPES_SEG, 'configs/mgd/mgd_fcn-r18_fcn-r18-w16_shapes_demo.py'),
    'acam-seg': (SHAPES_SEG, 'configs/acam_kd/acam-kd_logits_fcn-r18_fcn-r18-w16_shapes_demo.py'),
}
QUICK = dict(methods=['kd'], seeds=[0, 1], iters=60)


def short_schedule(config, iters):
    """--cfg-options that cut a config's training to about ``iters`` iterations.

    Epoch-based configs (the digits teachers) get one epoch; schedulers keep their
    configured length (smoke runs only).
    """
    if iters is None:
        return ()
    from mmengine.config import Config
    train_cfg = Config.fromfile(osp.join(ROOT, config)).get('train_cfg', {})
    if train_cfg.get('by_epoch', False):
        return ('train_cfg.max_epochs=1', 'train_cfg.val_interval=1')
    return (f'train_cfg.max_iters={iters}',)


def mean_std(values):
    """(mean, sample std); the std of one value is reported as nan, never as 0."""
    values = [float(v) for v in values]
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else float('nan')
    return mean, std


def summarise(method, task, alone, distilled, teacher):
    """One table row from the per-seed metrics (dicts seed -> value)."""
    seeds = sorted(set(alone) & set(distilled))
    if not seeds:
        raise ValueError(f'{method}: no seed has both a student-alone and a distilled result')
    gains = [distilled[s] - alone[s] for s in seeds]
    a_mean, a_std = mean_std([alone[s] for s in seeds])
    d_mean, d_std = mean_std([distilled[s] for s in seeds])
    g_mean, g_std = mean_std(gains)
    return dict(method=method, metric=task['metric'], seeds=seeds, teacher=teacher,
                alone=[alone[s] for s in seeds], distilled=[distilled[s] for s in seeds],
                alone_mean=a_mean, alone_std=a_std, distilled_mean=d_mean,
                distilled_std=d_std, gain_mean=g_mean, gain_std=g_std,
                gain_outside_one_std=bool(len(seeds) > 1 and g_mean > g_std))


def markdown(rows, command):
    lines = ['| method | metric | teacher | student alone | distilled | gain | seeds | '
             'gain > 1 std |', '|---|---|---|---|---|---|---|---|']
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['metric']} | {r['teacher']:.2f} | "
            f"{r['alone_mean']:.2f} ± {r['alone_std']:.2f} | "
            f"{r['distilled_mean']:.2f} ± {r['distilled_std']:.2f} | "
            f"{r['gain_mean']:+.2f} ± {r['gain_std']:.2f} | {len(r['seeds'])} | "
            f"{'yes' if r['gain_outside_one_std'] else 'no'} |")
    lines += ['', f'Command: `{command}`']
    return '\n'.join(lines) + '\n'


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--methods', nargs='+', default=None, choices=sorted(METHODS),
                   help='methods to run (default: all of them)')
    p.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    p.add_argument('--iters', type=int, default=None,
                   help='override train_cfg.max_iters of the student runs (schedules keep '
                   'their configured length; for smoke runs only)')
    p.add_argument('--resume', action='store_true',
                   help='reuse the teachers and runs recorded in the work dir (runs.json)')
    p.add_argument('--quick', action='store_true',
                   help=f"smoke run: methods {QUICK['methods']}, seeds {QUICK['seeds']}, "
                   f"{QUICK['iters']} iterations")
    p.add_argument('--work-dir', default='work_dirs/gains')
    args = p.parse_args(argv)
    if args.quick:
        args.methods = args.methods or QUICK['methods']
        args.seeds = QUICK['seeds'] if args.seeds == [0, 1, 2] else args.seeds
        args.iters = args.iters or QUICK['iters']
    if len(set(args.seeds)) != len(args.seeds):
        p.error(f'--seeds: repeated seed in {args.seeds}')
    if args.iters is not None and args.iters < 1:
        p.error(f'--iters must be >= 1, got {args.iters}')
    args.methods = args.methods or list(METHODS)
    return args


def main(argv=None):
    args = parse_args(argv)
    work = args.work_dir if osp.isabs(args.work_dir) else osp.join(ROOT, args.work_dir)
    os.makedirs(work, exist_ok=True)
    results_file = osp.join(work, 'runs.json')
    runs = {}
    if args.resume and osp.isfile(results_file):
        with open(results_file) as f:
            runs = json.load(f)

    def record(key, value):
        runs[key] = value
        with open(results_file + '.part', 'w') as f:
            json.dump(runs, f, indent=1)
        os.replace(results_file + '.part', results_file)

    if any(METHODS[m][0]['data'] == 'shapes' for m in args.methods):
        from mmkd.datasets import ensure_shapes
        ensure_shapes(osp.join(ROOT, 'data/shapes'))
    start = time.time()
    rows = []
    for method in args.methods:
        task, config = METHODS[method]
        tname = osp.splitext(osp.basename(task['teacher']))[0]
        tag = '' if args.iters is None else f'_it{args.iters}'  # smoke runs kept apart
        teacher_file = osp.join(work, 'teachers', f'{tname}{tag}.pth')
        tkey = f'teacher:{tname}:{args.iters}'
        if tkey not in runs or not osp.isfile(teacher_file):  # once per call, or resumed
            short = short_schedule(task['teacher'], args.iters)
            value, ckpt = train_and_test(f'teacher {tname}', task['teacher'],
                                         osp.join(work, 'teachers', tname + tag), task['metric'],
                                         extra=('--cfg-options', *short) if short else ())
            install_checkpoint(ckpt, teacher_file)
            record(tkey, value)
        alone, distilled = {}, {}
        for seed in args.seeds:
            opts = ['--cfg-options', f'randomness.seed={seed}',
                    *short_schedule(task['student'], args.iters)]
            sname = osp.splitext(osp.basename(task['student']))[0]
            key = f'alone:{sname}:{seed}:{args.iters}'
            if key not in runs:
                value, _ = train_and_test(f'{sname} alone, seed {seed}', task['student'],
                                          osp.join(work, sname + tag, f'seed{seed}'), task['metric'],
                                          extra=opts)
                record(key, value)
            alone[seed] = runs[key]
            key = f'{method}:{seed}:{args.iters}'
            if key not in runs:
                value, _ = train_and_test(
                    f'{method}, seed {seed}', config, osp.join(work, method + tag, f'seed{seed}'),
                    task['metric'], extra=(*opts, f'model.teacher_ckpt={teacher_file}'))
                record(key, value)
            distilled[seed] = runs[key]
        rows.append(summarise(method, task, alone, distilled, runs[tkey]))

    command = 'python tools/demo/method_gains.py ' + ' '.join(argv if argv is not None
                                                              else sys.argv[1:])
    table = markdown(rows, command.strip())
    with open(osp.join(work, 'gains.json'), 'w') as f:
        json.dump(rows, f, indent=1)
    with open(osp.join(work, 'gains.md'), 'w') as f:
        f.write(table)
    print()
    print(table)
    print(f'[gains] {len(rows)} method(s), seeds {args.seeds}, {time.time() - start:.0f} s; '
          f'written {osp.relpath(work, ROOT)}/gains.json and gains.md')
    return rows


if __name__ == '__main__':
    main()
