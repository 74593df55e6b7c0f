#!/usr/bin/env python
"""Peak extra CPU memory of one ACAMKDLoss forward + backward.

Runs the measurement in a fresh Python subprocess (so nothing allocated by this
process or by earlier runs is counted) on a feature the size of RetinaNet's P3
level at 800x1216 input (1 x 256 x 100 x 152 by default). The child:

1. imports torch and mmkd, builds the loss, the student and the teacher tensors;
2. records its current resident set size (RSS) and resets the kernel's peak-RSS
   counter (``/proc/self/clear_refs``; falls back to ``ru_maxrss`` elsewhere);
3. runs forward + backward once;
4. reports peak RSS minus the RSS of step 2, i.e. what the fusion, the masks and
   the backward pass added on top of the inputs and the parameters.

tracemalloc cannot see torch's allocations, hence RSS.

Usage::

    python tools/analysis_tools/acam_fusion_memory.py               # default: chunked exact attention
    python tools/analysis_tools/acam_fusion_memory.py --chunk 0     # full P x P attention (needs ~3+ GB)
    python tools/analysis_tools/acam_fusion_memory.py --kv-pool 32  # pooled keys/values

Exit code 1 when the figure is above ``--target-gib`` (default 2).
"""
import argparse
import json
import os
import os.path as osp
import resource
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


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


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0). True when it worked."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def worker(args) -> dict:
    sys.path.insert(0, ROOT)
    import torch

    from mmkd.models.losses.acam_kd_loss import ACAMKDLoss

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    n, c, h, w = args.shape
    loss = ACAMKDLoss(
        student_channels=c,
        teacher_channels=c,
        num_masks=args.num_masks,
        attn_chunk_size=args.chunk or None,
        kv_pool_size=args.kv_pool or None)
    preds_S = torch.randn(n, c, h, w, requires_grad=True)
    preds_T = torch.randn(n, c, h, w)

    base_kib = _status_kib('VmRSS')
    reset = _reset_peak()
    base_maxrss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    start = time.perf_counter()
    value = loss(preds_S, preds_T)
    value.backward()
    seconds = time.perf_counter() - start
    if reset and base_kib is not None:
        peak_kib = _status_kib('VmHWM')
        method = 'VmHWM after clear_refs'
    else:
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        base_kib = base_kib if base_kib is not None else base_maxrss_kib
        method = 'ru_maxrss'
    return dict(
        extra_gib=(peak_kib - base_kib) / 2**20,
        base_gib=base_kib / 2**20,
        peak_gib=peak_kib / 2**20,
        seconds=seconds,
        loss=float(value),
        method=method,
        student_grad=bool(preds_S.grad is not None and preds_S.grad.abs().sum() > 0))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--shape', type=int, nargs=4, default=[1, 256, 100, 152],
                        metavar=('N', 'C', 'H', 'W'))
    parser.add_argument('--num-masks', type=int, default=6)
    parser.add_argument('--chunk', type=int, default=1024,
                        help='query chunk of the exact attention; 0 = full P x P matrix')
    parser.add_argument('--kv-pool', type=int, default=0,
                        help='pool keys/values to this square grid; 0 = off')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--target-gib', type=float, default=2.0)
    parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    cmd = [sys.executable, osp.abspath(__file__), '--worker'] + (argv if argv is not None else
                                                                 sys.argv[1:])
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        print(f'measurement failed (exit code {proc.returncode}; '
              'a kill by the OOM killer shows as -9)')
        return 1
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    mode = ('full attention' if not args.chunk else f'chunked attention ({args.chunk} queries)')
    if args.kv_pool:
        mode += f', keys/values pooled to {args.kv_pool}x{args.kv_pool}'
    n, c, h, w = args.shape
    print(f'ACAMKDLoss forward+backward on {n}x{c}x{h}x{w}, M={args.num_masks}, {mode}')
    print(f'  peak extra CPU memory: {res["extra_gib"]:.3f} GiB '
          f'(RSS before {res["base_gib"]:.3f} GiB, peak {res["peak_gib"]:.3f} GiB; '
          f'{res["method"]})')
    print(f'  time: {res["seconds"]:.1f} s with {args.threads} threads; '
          f'loss {res["loss"]:.4f}; student grad: {res["student_grad"]}')
    ok = res['extra_gib'] < args.target_gib
    print(f'  target < {args.target_gib:g} GiB: {"PASS" if ok else "FAIL"}')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
