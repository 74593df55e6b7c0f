#!/usr/bin/env python
"""The main demo: logit distillation on real handwritten digits, few-label setting.

Trains, through the ordinary CLI (tools/train.py, tools/test.py):
  1. a teacher (CIFAR ResNet-18, width 32) on all training labels;
  2. the student (CIFAR ResNet-18, width 8) alone on the 10% labelled images;
  3. the same student with logit KD: teacher soft labels on every training image,
     ground-truth labels on the 10% labelled ones (same steps, seed and schedule);
then prints top-1 accuracy of each on the fixed val split.

Usage: python tools/demo/digits_kd_demo.py [--work-dir work_dirs/demo] [--iters N]
"""
import argparse
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TEACHER_CFG = 'configs/kd/teacher_resnet18-w32_digits_demo.py'
STUDENT_CFG = 'configs/kd/student_resnet18-w8_digits-10pct_demo.py'
KD_CFG = 'configs/kd/kd_logits_resnet18-w32_resnet18-w8_digits-10pct_demo.py'


def run(cmd, log_path):
    """Run a CLI step, keep its full log in a file, fail loudly with its tail."""
    with open(log_path, 'w') as log:
        proc = subprocess.run([sys.executable] + cmd, cwd=ROOT, stdout=log,
                              stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        with open(log_path) as log:
            tail = log.read()[-3000:]
        raise SystemExit(f'step failed: {" ".join(cmd)}\n--- log tail ({log_path}) ---\n{tail}')


def last_checkpoint(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def train_and_test(name, config, work_dir, extra=()):
    start = time.time()
    os.makedirs(work_dir, exist_ok=True)
    print(f'[demo] training {name} ({config}) ...', flush=True)
    run(['tools/train.py', config, '--work-dir', work_dir, *extra], osp.join(work_dir, 'train.log'))
    ckpt = last_checkpoint(work_dir)
    out = osp.join(work_dir, 'test_metrics.json')
    run(['tools/test.py', config, ckpt, '--work-dir', work_dir, '--out', out, *extra],
        osp.join(work_dir, 'test.log'))
    with open(out) as f:
        metrics = json.load(f)
    top1 = metrics['accuracy/top1']
    print(f'[demo] {name}: top-1 {top1:.2f}% ({time.time() - start:.0f} s)', flush=True)
    return top1, ckpt


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    args = parser.parse_args(argv)
    work = osp.join(ROOT, args.work_dir) if not osp.isabs(args.work_dir) else args.work_dir
    start = time.time()
    teacher_top1, teacher_ckpt = train_and_test('teacher', TEACHER_CFG, osp.join(work, 'teacher'))
    teacher_file = osp.join(work, 'teacher_resnet18-w32_digits.pth')
    shutil.copyfile(teacher_ckpt, teacher_file + '.part')
    os.replace(teacher_file + '.part', teacher_file)
    student_top1, _ = train_and_test('student alone', STUDENT_CFG, osp.join(work, 'student'))
    kd_top1, _ = train_and_test('student + KD', KD_CFG, osp.join(work, 'kd'),
                                extra=('--cfg-options', f'model.teacher_ckpt={teacher_file}'))
    rows = [
        ('teacher  (ResNet-18 w32, 100% labels)', teacher_top1),
        ('student alone  (ResNet-18 w8, 10% labels)', student_top1),
        ('student + logit KD  (10% labels + teacher on all)', kd_top1),
    ]
    print()
    print('Digits (scikit-learn, 1,438 train / 359 val), top-1 on val')
    print('-' * 62)
    for name, value in rows:
        print(f'{name:<52} {value:6.2f}%')
    print('-' * 62)
    print(f'KD gain over student alone: {kd_top1 - student_top1:+.2f} points '
          f'(total {time.time() - start:.0f} s)')
    with open(osp.join(work, 'results.json'), 'w') as f:
        json.dump({'teacher': teacher_top1, 'student': student_top1, 'kd': kd_top1}, f, indent=2)


if __name__ == '__main__':
    main()
