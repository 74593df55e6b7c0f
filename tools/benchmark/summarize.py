#!/usr/bin/env python
"""Print a markdown table of the JSON files written by distill_speed.py."""
import glob
import json
import os.path as osp
import sys


def px(size):
    return f'{size}px' if isinstance(size, int) else 'config'


def num(x, spec):
    return 'n/a' if x is None else format(x, spec)


def main(argv=None):
    folder = (argv or sys.argv[1:] or ['docs/benchmarks'])[0]
    rows = []
    for path in sorted(glob.glob(osp.join(folder, '*.json'))):
        r = json.load(open(path))
        m = r['median_ms']
        mem = r.get('peak_mib', {})
        rows.append(
            f"| {osp.splitext(osp.basename(path))[0]} | {r['device']} | {r['batch_size']}x"
            f"{px(r['input_size'])} | {m['a_student']:.0f} | {m['b_mmkd']:.0f} | "
            f"{num(m.get('c_plain'), '.0f')} | "
            f"{num(m.get('d_cached'), '.0f')} | {m['b_mmkd'] / m['a_student']:.2f} | "
            f"{num(r['ratio_b_over_c'], '.3f')} | "
            f"{num(r['ratio_b_over_d'], '.2f')} | "
            f"{num(r['ratio_d_over_a'], '.3f')} | {mem.get('a_student', float('nan')):.0f} / "
            f"{mem.get('b_mmkd', float('nan')):.0f} | {num(r.get('memory_bound_mib'), '.0f')} |")
    print('| config | device | batch | (a) student ms | (b) mmkd ms | (c) plain ms | (d) cached ms '
          '| b/a | b/c | b/d | d/a | peak MiB a / b | bound for b-a MiB |')
    print('|---|---|---|---|---|---|---|---|---|---|---|---|---|')
    print('\n'.join(rows))


if __name__ == '__main__':
    main()
