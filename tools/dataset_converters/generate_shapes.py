#!/usr/bin/env python
"""Write the embedded "shapes" data set (COCO json + mmseg image/mask folders).

Usage::

    python tools/dataset_converters/generate_shapes.py --out data/shapes \
        [--num-train 300] [--num-val 60] [--img-size 128] [--seed 0] [--force]

Nothing is written when ``--out`` already holds the data set for these parameters
(unless ``--force``). The data set is built in a temporary folder and renamed into
place, so an interrupted run leaves no half-written data set.
"""
import argparse
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmkd.datasets.shapes import SHAPES_CLASSES, ensure_shapes  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Generate the mmkd shapes data set')
    parser.add_argument('--out', default='data/shapes', help='output data root')
    parser.add_argument('--num-train', type=int, default=300, help='train images')
    parser.add_argument('--num-val', type=int, default=60, help='val images')
    parser.add_argument('--img-size', type=int, default=128, help='image side in pixels')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument('--max-objects', type=int, default=6,
                        help='most shapes drawn per image')
    parser.add_argument('--force', action='store_true',
                        help='regenerate even if a matching data set exists')
    return parser.parse_args(argv)


def format_summary(meta: dict) -> str:
    lines = [f"shapes data set v{meta['version']}, seed {meta['params']['seed']}, "
             f"{meta['params']['img_size']}x{meta['params']['img_size']} px, "
             f"classes: {', '.join(meta['classes'])}"]
    header = f"{'split':<6}{'images':>8}{'instances':>11}{'per image':>11}" + ''.join(
        f'{c:>11}' for c in SHAPES_CLASSES)
    lines.append(header)
    for split, s in meta['splits'].items():
        lines.append(f"{split:<6}{s['images']:>8}{s['instances']:>11}"
                     f"{s['mean_objects_per_image']:>11.2f}" +
                     ''.join(f"{s['instances_per_class'][c]:>11}" for c in SHAPES_CLASSES))
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    meta = ensure_shapes(
        args.out, force=args.force, num_train=args.num_train, num_val=args.num_val,
        img_size=args.img_size, seed=args.seed, max_objects=args.max_objects)
    elapsed = time.perf_counter() - start
    print(format_summary(meta))
    print(f'data root: {osp.abspath(args.out)} ({elapsed:.1f} s)')


if __name__ == '__main__':
    main()
