#!/usr/bin/env python
"""The main demo: logit distillation on real handwritten digits, few-label setting.

Trains, through the ordinary CLI (tools/train.py, tools/test.py):
  1. a teacher (CIFAR ResNet-18, width 32) on all training labels;
  2. the student (CIFAR ResNet-18, width 8) alone on the 10% labelled images;
  3. the same student with logit KD: teacher soft labels on every training image,
     ground-truth labels on the 10% labelled ones (same steps, seed and schedule);
then prints top-1 accuracy of each on the fixed val split, publishes the distilled
student (student weights only, hash in the name: the demo zoo's checkpoint) and checks
that the published file, tested with the plain mmpretrain student config, gives the
same top-1.

Usage: python tools/demo/digits_kd_demo.py [--work-dir work_dirs/demo]
"""
import argparse
import json
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from common import ROOT, install_checkpoint, publish_student, test_only, train_and_test  # noqa: E402

TEACHER_CFG = 'configs/kd/teacher_resnet18-w32_digits_demo.py'
STUDENT_CFG = 'configs/kd/student_resnet18-w8_digits-10pct_demo.py'
KD_CFG = 'configs/kd/kd_logits_resnet18-w32_resnet18-w8_digits-10pct_demo.py'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    args = parser.parse_args(argv)
    work = osp.join(ROOT, args.work_dir) if not osp.isabs(args.work_dir) else args.work_dir
    start = time.time()
    top1 = 'accuracy/top1'
    teacher_top1, teacher_ckpt = train_and_test('teacher', TEACHER_CFG, osp.join(work, 'teacher'), top1)
    teacher_file = install_checkpoint(teacher_ckpt, osp.join(work, 'teacher_resnet18-w32_digits.pth'))
    student_top1, _ = train_and_test('student alone', STUDENT_CFG, osp.join(work, 'student'), top1)
    kd_top1, kd_ckpt = train_and_test('student + KD', KD_CFG, osp.join(work, 'kd'), top1,
                                extra=('--cfg-options', f'model.teacher_ckpt={teacher_file}'))
    zoo = osp.join(work, 'zoo')
    published = publish_student(kd_ckpt, osp.join(zoo, 'kd_resnet18-w8_digits-10pct.pth'),
                                osp.join(zoo, 'publish.log'))
    published_top1 = test_only(STUDENT_CFG, published, osp.join(zoo, 'test'), top1)
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
    print(f'published student: {osp.relpath(published, ROOT)} (plain mmpretrain checkpoint; '
          f'tools/test.py {STUDENT_CFG} gives {published_top1:.2f}%)')
    if abs(published_top1 - kd_top1) > 1e-6:
        raise SystemExit(f'error: the published student gives {published_top1} top-1, the '
                         f'distillation checkpoint {kd_top1}')
    with open(osp.join(work, 'results.json'), 'w') as f:
        json.dump({'teacher': teacher_top1, 'student': student_top1, 'kd': kd_top1,
                   'published_student': osp.relpath(published, ROOT)}, f, indent=2)


if __name__ == '__main__':
    main()
