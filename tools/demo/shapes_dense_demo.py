#!/usr/bin/env python
"""Dense-prediction demo on the embedded shapes data: detection and segmentation.

For each task it trains (through tools/train.py, evaluated by tools/test.py):
the teacher, the student alone, and the student with each requested distillation
method, all with the same schedule and seed; then prints bbox mAP / mIoU.

Usage:
  python tools/demo/shapes_dense_demo.py [--tasks det seg] [--methods fitnet cwd mgd acam]
      [--reuse-teacher] [--work-dir work_dirs/shapes]
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from common import ROOT, install_checkpoint, test_only, train_and_test  # noqa: E402

TASKS = {
    'det': dict(
        metric='coco/bbox_mAP',
        teacher='configs/task_models/retinanet_r18_fpn_shapes_demo.py',
        teacher_file='retinanet_r18_fpn_shapes_demo.pth',
        student='configs/task_models/retinanet_r18-w16_fpn_shapes_demo.py',
        methods={
            'fitnet': 'configs/fitnet/fitnet_fpn_retinanet-r18_retinanet-r18-w16_shapes_demo.py',
            'mgd': 'configs/mgd/mgd_fpn_retinanet-r18_retinanet-r18-w16_shapes_demo.py',
            'acam': 'configs/acam_kd/acam-kd_fpn_retinanet-r18_retinanet-r18-w16_shapes_demo.py',
        }),
    'seg': dict(
        metric='mIoU',
        teacher='configs/task_models/fcn_r18_shapes_demo.py',
        teacher_file='fcn_r18_shapes_demo.pth',
        student='configs/task_models/fcn_r18-w16_shapes_demo.py',
        methods={
            'cwd': 'configs/cwd/cwd_logits_fcn-r18_fcn-r18-w16_shapes_demo.py',
            'mgd': 'configs/mgd/mgd_fcn-r18_fcn-r18-w16_shapes_demo.py',
            'acam': 'configs/acam_kd/acam-kd_logits_fcn-r18_fcn-r18-w16_shapes_demo.py',
        }),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--tasks', nargs='+', default=['det', 'seg'], choices=sorted(TASKS))
    parser.add_argument('--methods', nargs='+', default=None,
                        help='methods to run (default: every method of the task whose '
                        'config exists)')
    parser.add_argument('--reuse-teacher', action='store_true',
                        help='skip teacher training when its published checkpoint exists')
    parser.add_argument('--skip-student', action='store_true',
                        help='skip the student-alone run when its result is recorded')
    parser.add_argument('--work-dir', default='work_dirs/shapes')
    args = parser.parse_args(argv)

    from mmkd.datasets import ensure_shapes
    ensure_shapes(osp.join(ROOT, 'data/shapes'))
    work = args.work_dir if osp.isabs(args.work_dir) else osp.join(ROOT, args.work_dir)
    os.makedirs(work, exist_ok=True)
    results_file = osp.join(work, 'results.json')
    results = json.load(open(results_file)) if osp.isfile(results_file) else {}
    start = time.time()
    for task in args.tasks:
        spec = TASKS[task]
        metric = spec['metric']
        res = results.setdefault(task, {})
        teacher_file = osp.join(work, spec['teacher_file'])
        if args.reuse_teacher and osp.isfile(teacher_file) and 'teacher' not in res:
            res['teacher'] = test_only(spec['teacher'], teacher_file,
                                       osp.join(work, f'{task}_teacher'), metric)
        if not (args.reuse_teacher and osp.isfile(teacher_file)):
            res['teacher'], ckpt = train_and_test(f'{task} teacher', spec['teacher'],
                                                  osp.join(work, f'{task}_teacher'), metric)
            install_checkpoint(ckpt, teacher_file)
        if not (args.skip_student and 'student' in res):
            res['student'], _ = train_and_test(f'{task} student alone', spec['student'],
                                               osp.join(work, f'{task}_student'), metric)
        methods = args.methods or [m for m, c in spec['methods'].items()
                                   if osp.isfile(osp.join(ROOT, c))]
        for method in methods:
            if method not in spec['methods']:
                continue
            extra = ('--cfg-options', f'model.teacher_ckpt={teacher_file}')
            res[method], _ = train_and_test(f'{task} student + {method}', spec['methods'][method],
                                            osp.join(work, f'{task}_{method}'), metric, extra)
        json.dump(results, open(results_file, 'w'), indent=2)

    print()
    for task in args.tasks:
        metric = TASKS[task]['metric']
        print(f'shapes {task}: {metric} on the 60 val images')
        for name, value in results[task].items():
            print(f'  {name:<16} {value:8.4f}')
    print(f'total {time.time() - start:.0f} s; results in {results_file}')


if __name__ == '__main__':
    main()
