#!/usr/bin/env python
"""Memory and time of one ACAMKDLoss forward + backward per FPN level.

For each FPN level of a detector at a COCO input size (default 800 x 1333, padded
to a multiple of 32 as mmdet's data preprocessor does: 800 x 1344), each batch
size and each attention implementation, a fresh Python subprocess builds one
``ACAMKDLoss`` on (N, C, H/s, W/s) student and teacher tensors and runs forward +
backward once. It reports:

* **peak tensor bytes**: the peak, over forward + backward, of the bytes held by
  tensors allocated inside the measured region (the inputs and parameters, made
  before it, are not counted). On CPU from ``torch.profiler``'s memory events
  (``profile_memory=True``: every allocation and free, summed in time order); on
  CUDA ``torch.cuda.max_memory_allocated()`` minus the bytes allocated before;
* **peak RSS extra** (CPU only): the process's peak resident set minus its RSS
  before the region (``/proc/self/clear_refs`` + ``VmHWM``), which also counts
  allocator caches and fragmentation;
* **seconds**: wall time of forward + backward (after a small warm-up call), and
  **CPU seconds** (``time.process_time``, all threads of the process), which a
  shared, loaded machine disturbs less than the wall time.

Attention implementations (``ACAMKDLoss(attention=...)``): ``sdpa`` (the
default: ``F.scaled_dot_product_attention``), ``chunked`` (the pre-SDPA path:
queries in chunks of ``--chunk`` under activation checkpointing) and ``full``
(the P x P matrix at once; P2 at COCO size needs 18 GB per sample for the weights
alone, so it is not in the default list).

Usage::

    python tools/analysis_tools/acam_fusion_memory.py        # P2-P6, batch 1 and 2, sdpa + chunked
    python tools/analysis_tools/acam_fusion_memory.py --levels P3 P4 --batch 1 --impl sdpa
    python tools/analysis_tools/acam_fusion_memory.py --device cuda  # GPU: max_memory_allocated
    python tools/analysis_tools/acam_fusion_memory.py --shape 1 256 100 152  # one explicit shape

Prints a markdown table (``--json FILE`` also writes the rows). Exit code 1 when
a measurement fails or, with ``--target-gib``, when a peak is above the target.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import os.path as osp
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

#: Stride of each FPN level (mmdet: Faster R-CNN uses P2-P6, RetinaNet P3-P7).
LEVEL_STRIDES = {'P2': 4, 'P3': 8, 'P4': 16, 'P5': 32, 'P6': 64, 'P7': 128}
IMPLS = ('sdpa', 'chunked', 'full')


def level_size(level: str, input_hw: tuple[int, int], pad_divisor: int = 32) -> tuple[int, int]:
    """(H, W) of an FPN level for an input padded to ``pad_divisor``.

    Every stride-2 step of ResNet/FPN rounds up (``ceil``), so a level of stride s
    has ``ceil(padded / s)`` rows and columns.
    """
    if level not in LEVEL_STRIDES:
        raise ValueError(f'unknown level {level!r}; valid: {sorted(LEVEL_STRIDES)}')
    stride = LEVEL_STRIDES[level]
    padded = [math.ceil(x / pad_divisor) * pad_divisor for x in input_hw]
    return tuple(math.ceil(x / stride) for x in padded)


# ---------------------------------------------------------------- measurement
def _status_kib(field: str):
    """A ``VmRSS``/``VmHWM`` line of /proc/self/status in KiB, or None off Linux."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0). True when it worked."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def profiler_peak_bytes(prof, device_type) -> int:
    """Peak of the running sum of the profiler's ``[memory]`` events of one device.

    Each event is one allocation (+bytes) or free (-bytes) of a tensor's storage,
    so the running sum in time order is the bytes held by tensors allocated
    inside the profiled region, and its maximum is their peak.
    """
    events = [e for e in prof.profiler.kineto_results.events()
              if e.name() == '[memory]' and e.device_type() == device_type]
    events.sort(key=lambda e: e.start_ns())
    held = peak = 0
    for e in events:
        held += e.nbytes()
        peak = max(peak, held)
    return peak


def worker(args) -> dict:
    sys.path.insert(0, ROOT)
    import torch

    from mmkd.models.losses.acam_kd_loss import ACAMKDLoss

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    n, c, h, w = args.shape

    def make(shape):
        loss = ACAMKDLoss(student_channels=c, teacher_channels=c, num_masks=args.num_masks,
                          attention=args.impl, attn_chunk_size=args.chunk).to(device)
        preds_S = torch.randn(*shape, device=device, requires_grad=True)
        preds_T = torch.randn(*shape, device=device)
        return loss, preds_S, preds_T

    def step(loss, preds_S, preds_T):
        value = loss(preds_S, preds_T)
        value.backward()
        if device.type == 'cuda':
            torch.cuda.synchronize()
        return value

    step(*make((1, c, 4, 6)))  # warm-up: kernels, thread pools, lazy initialisation
    cpu_start = time.process_time()
    loss, preds_S, preds_T = make((n, c, h, w))
    res = dict(shape=[n, c, h, w], positions=h * w, impl=args.impl, device=args.device,
               threads=args.threads)
    if device.type == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        start = time.perf_counter()
        value = step(loss, preds_S, preds_T)
        res['seconds'] = time.perf_counter() - start
        res['peak_bytes'] = torch.cuda.max_memory_allocated(device) - base
        res['method'] = 'torch.cuda.max_memory_allocated'
    else:
        from torch.autograd import DeviceType
        from torch.profiler import ProfilerActivity, profile
        base_kib = _status_kib('VmRSS')
        reset = _reset_peak_rss()
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            start = time.perf_counter()
            value = step(loss, preds_S, preds_T)
            res['seconds'] = time.perf_counter() - start
        peak_kib = _status_kib('VmHWM')
        res['peak_bytes'] = profiler_peak_bytes(prof, DeviceType.CPU)
        res['method'] = 'torch.profiler memory events'
        if reset and base_kib is not None and peak_kib is not None:
            res['rss_extra_bytes'] = (peak_kib - base_kib) * 1024
    res['cpu_seconds'] = time.process_time() - cpu_start  # CPU time of all threads
    res['loss'] = float(value)
    res['student_grad'] = bool(preds_S.grad is not None and preds_S.grad.abs().sum() > 0)
    return res


def measure(args, shape, impl) -> dict:
    """Run :func:`worker` for one shape and implementation in a fresh subprocess."""
    cmd = [sys.executable, osp.abspath(__file__), '--worker', '--shape', *map(str, shape),
           '--impl', impl, '--num-masks', str(args.num_masks), '--chunk', str(args.chunk),
           '--threads', str(args.threads), '--device', args.device]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-1500:]
        return dict(shape=list(shape), impl=impl, error=f'exit code {proc.returncode} '
                    f'(-9: killed, e.g. by the OOM killer): {tail}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _gib(x) -> str:
    return '-' if x is None else f'{x / 2**30:.3f}'


def format_rows(rows: list[dict]) -> str:
    lines = ['| level | N x C x H x W | positions | attention | peak tensor GiB | '
             'peak RSS extra GiB | seconds | CPU seconds |', '|---|---|---|---|---|---|---|---|']
    for r in rows:
        shape = 'x'.join(map(str, r['shape']))
        if 'error' in r:
            lines.append(f"| {r.get('level', '-')} | {shape} | - | {r['impl']} | failed | - | - | - |")
            continue
        lines.append(f"| {r.get('level', '-')} | {shape} | {r['positions']} | {r['impl']} | "
                     f"{_gib(r['peak_bytes'])} | {_gib(r.get('rss_extra_bytes'))} | "
                     f"{r['seconds']:.2f} | {r.get('cpu_seconds', float('nan')):.2f} |")
    return '\n'.join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--levels', nargs='+', default=['P2', 'P3', 'P4', 'P5', 'P6'],
                        choices=sorted(LEVEL_STRIDES))
    parser.add_argument('--input', type=int, nargs=2, default=[800, 1333], metavar=('H', 'W'),
                        help='detector input size before padding (COCO: 800 x 1333)')
    parser.add_argument('--pad-divisor', type=int, default=32)
    parser.add_argument('--batch', type=int, nargs='+', default=[1, 2])
    parser.add_argument('--channels', type=int, default=256, help='FPN channels (C)')
    parser.add_argument('--shape', type=int, nargs=4, default=None, metavar=('N', 'C', 'H', 'W'),
                        help='measure this one shape instead of --levels/--batch')
    parser.add_argument('--impl', nargs='+', default=['sdpa', 'chunked'], choices=IMPLS)
    parser.add_argument('--num-masks', type=int, default=6)
    parser.add_argument('--chunk', type=int, default=1024,
                        help="query chunk of the 'chunked' implementation")
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda' ('cuda:1', ...)")
    parser.add_argument('--target-gib', type=float, default=None,
                        help='fail (exit code 1) when a peak tensor figure is above this')
    parser.add_argument('--json', default=None, help='also write the rows to this file')
    parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker and args.shape is None:
        parser.error('--worker needs --shape')
    if args.worker and len(args.impl) != 1:
        parser.error('--worker takes one --impl')
    for name in ('threads', 'num_masks', 'chunk', 'channels', 'pad_divisor'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1, got {getattr(args, name)}')
    if any(b < 1 for b in args.batch):
        parser.error(f'--batch sizes must be >= 1, got {args.batch}')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        args.impl = args.impl[0]
        print(json.dumps(worker(args)))
        return 0
    if args.shape is not None:
        jobs = [('-', tuple(args.shape))]
    else:
        jobs = [(lvl, (n, args.channels, *level_size(lvl, tuple(args.input), args.pad_divisor)))
                for lvl in args.levels for n in args.batch]
    print(f'ACAMKDLoss forward+backward, M={args.num_masks}, device {args.device}, '
          f'{args.threads} threads, input {args.input[0]}x{args.input[1]} padded to '
          f'/{args.pad_divisor}', flush=True)
    rows = []
    for level, shape in jobs:
        for impl in args.impl:
            row = dict(measure(args, shape, impl), level=level)
            rows.append(row)
            if 'error' in row:
                print(f'  {level} {shape} {impl}: FAILED {row["error"]}', flush=True)
            else:
                print(f'  {level} {"x".join(map(str, shape))} {impl}: peak tensors '
                      f'{_gib(row["peak_bytes"])} GiB, {row["seconds"]:.2f} s', flush=True)
    print(format_rows(rows))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=1)
    failed = any('error' in r for r in rows)
    if args.target_gib is not None:
        over = [r for r in rows if 'error' not in r and r['peak_bytes'] > args.target_gib * 2**30]
        print(f'target < {args.target_gib:g} GiB: {"FAIL" if over else "PASS"}')
        failed = failed or bool(over)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
