#!/usr/bin/env python
"""The GPU pieces of ``tools/benchmark/gpu_check.sh``: precision, AMP, teacher compile.

For the peer-benchmark pairs (``peer_speed.py``: logit KD ResNet-50 -> ResNet-18,
hint ResNet-34 -> ResNet-18 at layer3, FPN KD RetinaNet R50 -> R18), each variant is
built alone on the GPU, runs ``--warmup`` + ``--iters`` mmkd training steps and
reports its median step time and ``torch.cuda.max_memory_allocated`` (reset after
the build: weights + the steps' peak):

* ``fp32``: the baseline;
* ``teacher bf16`` / ``teacher fp16`` (``teacher_precision``, mode 'autocast') and
  ``teacher bf16 cast`` (weights stored in bf16);
* ``student amp fp16`` / ``student amp bf16``: ``AmpOptimWrapper`` (what
  ``tools/train.py --amp`` uses), teacher fp32;
* ``teacher compile``: ``teacher_compile=True``; the first step's extra time
  (compilation) is reported separately, and the break-even step count.

``--dry-run`` (what ``gpu_check.sh`` runs without a GPU, and what the test runs):
imports every piece and builds every variant's algorithm on the CPU at a tiny size,
runs nothing, and exits 0. ``--table FILE...`` prints the JSON rows of several runs
as one markdown table.
"""
from __future__ import annotations

import argparse
import gc
import json
import os.path as osp
import statistics
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, osp.join(ROOT, 'tools', 'benchmark'))

VARIANTS = {
    'fp32': dict(),
    'teacher bf16': dict(teacher_precision='bf16'),
    'teacher fp16': dict(teacher_precision='fp16'),
    'teacher bf16 cast': dict(teacher_precision='bf16', teacher_precision_mode='cast'),
    'student amp fp16': dict(_amp='float16'),
    'student amp bf16': dict(_amp='bfloat16'),
    'teacher compile': dict(teacher_compile=True),
    'teacher compile + channels_last': dict(teacher_compile=True, teacher_channels_last=True),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--pairs', nargs='+', default=['kd', 'hint', 'fpn'])
    p.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument('--cls-size', type=int, default=224)
    p.add_argument('--det-size', type=int, default=512)
    p.add_argument('--det-batch-size', type=int, default=4)
    p.add_argument('--iters', type=int, default=20)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--device', default='cuda')
    p.add_argument('--json', default=None, help='write the rows to this file')
    p.add_argument('--dry-run', action='store_true',
                   help='CPU: import and build every piece at a tiny size, run nothing')
    p.add_argument('--table', nargs='+', default=None, metavar='JSON',
                   help='print the rows of these JSON files as one table and exit')
    return p.parse_args(argv)


def pair_setup(ps, ds, pair, batch_size, size):
    """``(cfg, model_cfg, batches, size)`` of one peer-benchmark pair."""
    cfg_path = ps.FPN_CONFIG if pair == 'fpn' else ps.KD_CONFIG
    cfg, scope, model_cfg, _ = ds.load_config(osp.join(ROOT, cfg_path))
    if pair == 'hint':
        model_cfg = ps.hint_model_cfg()
    batches, _, size = ds.build_data(cfg, scope, None, batch_size, size)
    return cfg, dict(model_cfg), batches, size


def build_variant(ds, model_cfg, variant, size, device):
    """The algorithm and its optimizer wrapper for one variant."""
    import torch
    from mmengine.optim import AmpOptimWrapper, OptimWrapper
    opts = dict(VARIANTS[variant])
    amp = opts.pop('_amp', None)
    algo = ds.build_algo(dict(model_cfg, **opts), size, device)
    sgd = torch.optim.SGD(algo.parameters(), lr=1e-5)
    wrapper = AmpOptimWrapper(optimizer=sgd, dtype=amp) if amp else OptimWrapper(sgd)
    return algo, wrapper


def run_variant(ds, model_cfg, variant, batches, size, args):
    import torch
    torch.cuda.empty_cache()
    algo, wrapper = build_variant(ds, model_cfg, variant, size, args.device)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(args.warmup + args.iters):
        t0 = time.perf_counter()
        algo.train_step(batches[i % len(batches)], wrapper)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    steady = statistics.median(times[args.warmup:]) * 1000
    row = dict(variant=variant, median_ms=steady, first_step_ms=times[0] * 1000,
               max_memory_allocated_mib=torch.cuda.max_memory_allocated() / 2**20)
    del algo, wrapper
    gc.collect()
    return row


def main(argv=None):
    args = parse_args(argv)
    if args.table:
        return print_table(args.table)
    import peer_speed as ps
    import torch
    ds = ps.load_distill_speed()
    if args.dry_run:
        return dry_run(ps, ds, args)
    if not torch.cuda.is_available():
        print('gpu_check.py: no CUDA device (use --dry-run on a CPU machine)')
        return 1
    rows = []
    for pair in args.pairs:
        det = pair == 'fpn'
        cfg, model_cfg, batches, size = pair_setup(
            ps, ds, pair, args.det_batch_size if det else args.batch_size,
            args.det_size if det else args.cls_size)
        base = None
        for variant in args.variants:
            try:
                row = run_variant(ds, model_cfg, variant, batches, size, args)
            except Exception as err:  # noqa: BLE001 (one failing variant must not stop the rest)
                row = dict(variant=variant, error=f'{type(err).__name__}: {err}'[:300])
            row.update(pair=ps.TITLES[pair], batch=f'{len(batches[0]["inputs"])}x{size}px')
            if variant == 'fp32' and 'median_ms' in row:
                base = row
            if base is not None and 'median_ms' in row:
                row['vs_fp32'] = row['median_ms'] / base['median_ms']
                if variant.startswith('teacher compile'):
                    extra = row['first_step_ms'] - row['median_ms']
                    gain = base['median_ms'] - row['median_ms']
                    row['compile_s'] = extra / 1000
                    row['break_even_steps'] = extra / gain if gain > 0 else None
            print(json.dumps(row))
            rows.append(row)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=2)
    print(format_rows(rows))
    return 0


def dry_run(ps, ds, args):
    """Import and build every piece on the CPU at a tiny size; run nothing."""
    import importlib.util

    import torch
    from mmengine.config import Config
    checked = []
    for pair in args.pairs:
        det = pair == 'fpn'
        cfg, model_cfg, batches, size = pair_setup(ps, ds, pair, 2, 64 if det else 32)
        for variant in args.variants:
            opts = dict(VARIANTS[variant])
            amp = opts.pop('_amp', None)
            algo = ds.build_algo(dict(model_cfg, **opts), size, 'cpu')
            assert algo.teacher_set.compile.enabled == bool(opts.get('teacher_compile'))
            if amp:
                from mmengine.optim import AmpOptimWrapper  # noqa: F401 (needs CUDA to build)
            checked.append(f'{pair}: {variant}')
            del algo
        gc.collect()
    spec = importlib.util.spec_from_file_location(
        'acam_fusion_memory', osp.join(ROOT, 'tools', 'analysis_tools', 'acam_fusion_memory.py'))
    acam = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(acam)
    assert acam.level_size('P2', (800, 1333)) == (200, 336)
    checked.append('ACAM-KD fusion tool (P3/P2 at 800x1333)')
    for cfg_path in DIST_CONFIGS.values():
        Config.fromfile(osp.join(ROOT, cfg_path))
        checked.append(f'2-GPU config {cfg_path}')
    ps.parse_args(['--device', 'cuda'])
    checked.append(f'peer_speed.py (torchdistill: {ps.torchdistill_status()[1] or "not importable"})')
    print(f'dry run: torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}')
    for item in checked:
        print(f'  ok  {item}')
    return 0


DIST_CONFIGS = {
    'DDP': 'configs/kd/kd_logits_resnet18-w32_resnet18-w8_digits-10pct_demo.py',
    'FSDP': 'configs/llava_kd/llava-kd_clip-w128-qwen2-w128-d4_to_w64-d2_shapes-vqa_fsdp_demo.py',
}


def _fmt(v, spec):
    return 'n/a' if v is None else format(v, spec)


def format_rows(rows):
    out = ['| piece | pair / shape | variant | median ms | max allocated MiB | vs fp32 | note |',
           '|---|---|---|---|---|---|---|']
    for r in rows:
        note = r.get('error') or r.get('note', '')
        if 'compile_s' in r:
            note = (f"compile {r['compile_s']:.1f} s, break-even "
                    f"{_fmt(r.get('break_even_steps'), '.0f')} steps")
        out.append(f"| {r.get('piece', 'precision/compile')} | {r.get('pair', '')} {r.get('batch', '')} | "
                   f"{r['variant']} | {_fmt(r.get('median_ms'), '.1f')} | "
                   f"{_fmt(r.get('max_memory_allocated_mib'), '.0f')} | {_fmt(r.get('vs_fp32'), '.3f')} | "
                   f'{note} |')
    return '\n'.join(out)


def print_table(paths):
    rows = []
    for path in paths:
        if not osp.exists(path):
            rows.append(dict(piece=osp.basename(path), variant='-', error='not produced'))
            continue
        with open(path) as f:
            data = json.load(f)
        rows.extend(data if isinstance(data, list) else [data])
    print(format_rows(rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())
