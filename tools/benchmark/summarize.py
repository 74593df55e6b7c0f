#!/usr/bin/env python
"""Print a markdown table of the JSON files written by distill_speed.py.

Memory columns count the bytes held by tensors (CPU: allocator events recorded by
torch.profiler; CUDA: max allocated). They read ``n/a`` for results of earlier probes
(before the tensor count; the very first ones also left out the teacher's weights),
which are not comparable with the bound. "outside teacher fwd": (b)'s peak outside its
teacher forward (where a kept teacher graph would show) minus (a)'s peak. b-c: (b)'s
peak minus the hand-written loop's (c), i.e. the memory mmkd adds (n/a where there is
no hand-written loop). "RSS b-a": the same difference in resident set size, for runs
made with ``--rss``.
"""
import glob
import json
import os.path as osp
import sys

HEADER = ('| config | device | batch | (a) student ms | (b) mmkd ms | (c) plain ms | (d) cached ms '
          '| (e) no early exit ms | b/a | b/c | b/d | d/a | b/e | peak MiB a / b / c | b-a MiB '
          '| b-c MiB | b-a outside teacher fwd MiB | bound for b-a MiB | RSS b-a MiB |')


def px(size):
    return f'{size}px' if isinstance(size, int) else 'config'


def num(x, spec):
    if x is None:
        return 'n/a'
    text = format(x, spec)
    return text.lstrip('-') if float(text) == 0 else text  # no "-0"


def row(path):
    r = json.load(open(path))
    m = r['median_ms']
    mem = r.get('peak_mib') if 'held by tensors' in r.get('memory_probe', '') else None
    rss = r.get('rss', {}).get('memory_b_minus_a_mib')
    peaks = (f"{mem['a_student']:.0f} / {mem['b_mmkd']:.0f} / {num(mem.get('c_plain'), '.0f')}"
             if mem else 'n/a')
    return (f"| {osp.splitext(osp.basename(path))[0]} | {r['device']} | {r['batch_size']}x"
            f"{px(r['input_size'])} | {m['a_student']:.0f} | {m['b_mmkd']:.0f} | "
            f"{num(m.get('c_plain'), '.0f')} | {num(m.get('d_cached'), '.0f')} | "
            f"{num(m.get('e_no_early_exit'), '.0f')} | {m['b_mmkd'] / m['a_student']:.2f} | "
            f"{num(r.get('ratio_b_over_c'), '.3f')} | {num(r.get('ratio_b_over_d'), '.2f')} | "
            f"{num(r.get('ratio_d_over_a'), '.3f')} | {num(r.get('ratio_b_over_e'), '.3f')} | "
            f"{peaks} | {num(r['memory_b_minus_a_mib'] if mem else None, '.0f')} | "
            f"{num(r.get('memory_b_minus_c_mib') if mem else None, '.0f')} | "
            f"{num(r.get('memory_b_outside_teacher_forward_minus_a_mib') if mem else None, '.0f')} | "
            f"{num(r.get('memory_bound_mib') if mem else None, '.0f')} | {num(rss, '.0f')} |")


def main(argv=None):
    folder = (argv or sys.argv[1:] or ['docs/benchmarks'])[0]
    print(HEADER)
    print('|---' * HEADER.count(' | ') + '|---|')
    for path in sorted(glob.glob(osp.join(folder, '*.json'))):
        print(row(path))


if __name__ == '__main__':
    main()
