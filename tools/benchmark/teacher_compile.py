#!/usr/bin/env python
"""What ``teacher_compile`` and ``channels_last`` gain, per teacher, on this device.

For the teachers of the peer-benchmark pairs (``peer_speed.py``: ResNet-50 to its
logits, ResNet-34 to layer3 (early exit), RetinaNet R50 to its FPN (early exit)), an
mmkd algorithm is built per variant (same seed: the same weights):

* ``eager``: the default;
* ``channels_last``: ``teacher_channels_last=True``;
* ``compile``: ``teacher_compile=True`` (torch.compile, inductor, ``freezing``);
* ``compile+cl``: both.

Each variant's teacher forward runs exactly as in training
(``SingleTeacherDistill._teacher_forward``: no_grad, recorders, early exit). The first
call of a compiled variant compiles; its extra time over the variant's median is the
compile time. Then ``--iters`` interleaved rounds (order shuffled every round) time the
steady teacher forward. Reported: median ms, speed-up vs eager, compile seconds and
the break-even step count (compile time / ms saved per step), and the largest
difference of the recorded teacher tensors from eager, relative to their largest value.

``--students`` also times the student's own train step (forward, loss, backward, SGD)
with and without ``channels_last`` (``mmkd.models.teachers.to_channels_last``).

Usage: OMP_NUM_THREADS=1 python tools/benchmark/teacher_compile.py [--pairs kd hint fpn]
           [--iters 10] [--batch-size 8] [--students] [--json FILE]
"""
from __future__ import annotations

import argparse
import copy
import gc
import json
import os.path as osp
import random
import statistics
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(ROOT, 'tools', 'benchmark'))

VARIANTS = {
    'eager': dict(),
    'channels_last': dict(teacher_channels_last=True),
    'compile': dict(teacher_compile=True),
    'compile+cl': dict(teacher_compile=True, teacher_channels_last=True),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--pairs', nargs='+', default=['kd', 'hint', 'fpn'])
    p.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument('--iters', type=int, default=10)
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--cls-size', type=int, default=64)
    p.add_argument('--det-size', type=int, default=128)
    p.add_argument('--device', default='cpu')
    p.add_argument('--students', action='store_true',
                   help='also time the students alone with/without channels_last')
    p.add_argument('--json', default=None)
    return p.parse_args(argv)


def perturb_norms(model, seed=0):
    """Random BatchNorm statistics and affine terms (seeded, the same for every
    variant): freshly initialised BNs (mean 0, var 1, weight 1 or 0, bias 0) would make
    the folded and the eager result trivially equal."""
    import torch
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(n, generator=gen) - 0.5)


def recorded(algo, data):
    algo.distiller.teacher_recorders.reset()
    algo._teacher_forward(data['inputs'], data['data_samples'])
    values = [v.detach().clone() for v in algo.distiller.read_teacher_sources().values()]
    algo.distiller.teacher_recorders.reset()
    return values


def sync(device):
    if device.startswith('cuda'):
        import torch
        torch.cuda.synchronize()


def bench_pair(ps, ds, pair, args):
    det = pair == 'fpn'
    cfg_path = ps.FPN_CONFIG if det else ps.KD_CONFIG
    cfg, scope, model_cfg, _ = ds.load_config(osp.join(ROOT, cfg_path))
    if pair == 'hint':
        model_cfg = ps.hint_model_cfg()
    batches, _, size = ds.build_data(cfg, scope, None, args.batch_size,
                                     args.det_size if det else args.cls_size)
    algos, first, ref, diff = {}, {}, None, {}
    for name in args.variants:
        algo = ds.build_algo(dict(model_cfg, **VARIANTS[name]), size, args.device)
        perturb_norms(algo.teacher)
        data = algo.data_preprocessor(copy.deepcopy(batches[0]), True)
        sync(args.device)
        t0 = time.perf_counter()
        values = recorded(algo, data)  # compiles, for the compiled variants
        sync(args.device)
        first[name] = time.perf_counter() - t0
        if ref is None:
            ref = values
        # relative to the largest reference value: perturbed BNs make activations large
        diff[name] = max(float((a.float() - b.float()).abs().max() / b.float().abs().max())
                         for a, b in zip(values, ref))
        algos[name] = (algo, data)
    times = {name: [] for name in algos}
    rng = random.Random(0)
    for r in range(args.iters + 1):
        order = list(algos)
        rng.shuffle(order)
        for name in order:
            algo, data = algos[name]
            sync(args.device)
            t0 = time.perf_counter()
            algo.distiller.teacher_recorders.reset()
            algo._teacher_forward(data['inputs'], data['data_samples'])
            sync(args.device)
            if r:  # round 0: warm-up
                times[name].append(time.perf_counter() - t0)
    rows = []
    eager = statistics.median(times['eager']) * 1000 if 'eager' in times else None
    for name in algos:
        med = statistics.median(times[name]) * 1000
        compile_s = max(first[name] - med / 1000, 0.0) if 'compile' in name else None
        saved = (eager - med) if eager is not None else None
        row = dict(pair=ps.TITLES[pair], teacher_forward=teacher_desc(pair), variant=name,
                   batch=f'{args.batch_size}x{size}px', median_ms=med,
                   min_ms=min(times[name]) * 1000, max_ms=max(times[name]) * 1000,
                   speedup=eager / med if eager else None, saved_ms_per_step=saved,
                   compile_s=compile_s, max_rel_diff_vs_eager=diff[name],
                   compiled_units=len(algos[name][0].teacher_set.compiled_paths('teacher')))
        if compile_s is not None and saved:
            row['break_even_steps'] = compile_s * 1000 / saved if saved > 0 else None
        rows.append(row)
    del algos
    gc.collect()
    return rows


def teacher_desc(pair):
    return {'kd': 'ResNet-50 to head.fc', 'hint': 'ResNet-34 to layer3 (early exit)',
            'fpn': 'RetinaNet R50 to the FPN (early exit)'}[pair]


def bench_students(ps, ds, args):
    """The student alone, one train step, eager vs channels_last (interleaved)."""
    import torch
    from mmengine.optim import OptimWrapper

    from mmkd.models.teachers import to_channels_last
    from mmkd.utils import build_task_model
    rows = []
    for pair, cfg_path in (('kd', ps.KD_CONFIG), ('fpn', ps.FPN_CONFIG)):
        det = pair == 'fpn'
        cfg, scope, model_cfg, _ = ds.load_config(osp.join(ROOT, cfg_path))
        batches, _, size = ds.build_data(cfg, scope, None, args.batch_size,
                                         args.det_size if det else args.cls_size)
        models = {}
        for name in ('eager', 'channels_last'):
            torch.manual_seed(0)
            student, _ = build_task_model(model_cfg['architecture'], key='architecture')
            ds.fit_input_size([student], size)
            student.to(args.device).train()
            if name == 'channels_last':
                to_channels_last(student)
            models[name] = (student, OptimWrapper(torch.optim.SGD(student.parameters(), lr=1e-5)))
        times = {n: [] for n in models}
        rng = random.Random(0)
        for r in range(args.iters + 1):
            order = list(models)
            rng.shuffle(order)
            for name in order:
                student, ow = models[name]
                sync(args.device)
                t0 = time.perf_counter()
                student.train_step(batches[r % len(batches)], ow)
                sync(args.device)
                if r:
                    times[name].append(time.perf_counter() - t0)
        eager = statistics.median(times['eager']) * 1000
        for name in models:
            med = statistics.median(times[name]) * 1000
            rows.append(dict(pair=f'student of {ps.TITLES[pair]}', variant=f'student {name}',
                             batch=f'{args.batch_size}x{size}px', median_ms=med,
                             min_ms=min(times[name]) * 1000, max_ms=max(times[name]) * 1000,
                             speedup=eager / med))
        del models
        gc.collect()
    return rows


def fmt(v, spec):
    return 'n/a' if v is None else format(v, spec)


def table(rows):
    out = ['| teacher forward | batch | variant | median ms (min-max) | vs eager | compile s | '
           'break-even steps | max rel diff |', '|---|---|---|---|---|---|---|---|']
    for r in rows:
        out.append(f"| {r.get('teacher_forward', r['pair'])} | {r['batch']} | {r['variant']} | "
                   f"{r['median_ms']:.1f} ({r['min_ms']:.1f}-{r['max_ms']:.1f}) | "
                   f"{fmt(r.get('speedup'), '.3f')} | {fmt(r.get('compile_s'), '.1f')} | "
                   f"{fmt(r.get('break_even_steps'), '.0f')} | "
                   f"{fmt(r.get('max_rel_diff_vs_eager'), '.1e')} |")
    return '\n'.join(out)


def main(argv=None):
    args = parse_args(argv)
    import logging

    import torch
    from mmengine.logging import MMLogger
    MMLogger.get_instance('mmengine').setLevel(logging.WARNING)
    import peer_speed as ps
    ds = ps.load_distill_speed()
    rows = []
    for pair in args.pairs:
        t0 = time.perf_counter()
        pair_rows = bench_pair(ps, ds, pair, args)
        print(table(pair_rows), f'\n({pair}: {time.perf_counter() - t0:.0f} s)', flush=True)
        rows += pair_rows
    if args.students:
        student_rows = bench_students(ps, ds, args)
        print(table(student_rows), flush=True)
        rows += student_rows
    print(f'\ntorch {torch.__version__}, {args.device}, {torch.get_num_threads()} thread(s)')
    print(table(rows))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=2)
    return rows


if __name__ == '__main__':
    main()
