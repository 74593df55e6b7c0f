#!/usr/bin/env python
"""LLaVA-KD demo: distil a tiny LLaVA into a smaller one on generated shapes VQA, on CPU.

Trains, through tools/train.py and tools/test.py (one thread per run):

  1. the teacher (CLIP width 128 x 4 + Qwen2 width 128 x 4), 1,000 iterations of SFT;
  2. the student (CLIP width 64 x 2 + Qwen2 width 64 x 2), 1,000 iterations of SFT only;
  3. the same student, 1,000 iterations of CE + MDist + RDist from the frozen teacher;

and prints the exact-match answer accuracy of each on the 600 held-out questions.

Usage: python tools/demo/llava_kd_demo.py [--work-dir work_dirs/llava_kd_demo]
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from common import ROOT, install_checkpoint, last_checkpoint, run  # noqa: E402

CFG = 'configs/llava_kd/'
TEACHER = CFG + 'llava_clip-w128-qwen2-w128-d4_shapes-vqa_teacher_demo.py'
SFT = CFG + 'llava_clip-w64-qwen2-w64-d2_shapes-vqa_sft_demo.py'
KD = CFG + 'llava-kd_clip-w128-qwen2-w128-d4_to_w64-d2_shapes-vqa_demo.py'
KEYS = ('vqa/accuracy', 'vqa/acc_count', 'vqa/acc_colour', 'vqa/acc_exist')


def train(name, config, work, extra=()):
    os.makedirs(work, exist_ok=True)
    print(f'[demo] training {name} ({config}) ...', flush=True)
    run(['tools/train.py', config, '--work-dir', work, *extra], osp.join(work, 'train.log'))
    return last_checkpoint(work)


def test(config, ckpt, work, extra=()):
    out = osp.join(work, 'test_metrics.json')
    run(['tools/test.py', config, ckpt, '--work-dir', work, '--out', out, *extra],
        osp.join(work, 'test.log'))
    with open(out) as f:
        return json.load(f)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/llava_kd_demo')
    args = parser.parse_args(argv)
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    work = args.work_dir if osp.isabs(args.work_dir) else osp.join(ROOT, args.work_dir)
    start = time.time()
    rows = []
    ckpt = train('teacher', TEACHER, osp.join(work, 'teacher'))
    teacher = install_checkpoint(ckpt, osp.join(work, 'teacher.pth'))
    rows.append(('teacher (SFT)', test(TEACHER, teacher, osp.join(work, 'teacher'))))
    ckpt = train('student, SFT only', SFT, osp.join(work, 'student_sft'))
    rows.append(('student, SFT only', test(SFT, ckpt, osp.join(work, 'student_sft'))))
    opts = ['--cfg-options', f'model.teacher_ckpt={teacher}']
    ckpt = train('student, LLaVA-KD', KD, osp.join(work, 'student_kd'), opts)
    rows.append(('student, LLaVA-KD', test(KD, ckpt, osp.join(work, 'student_kd'), opts)))
    print('| model | accuracy | count | colour | exist |')
    print('|---|---|---|---|---|')
    for name, metrics in rows:
        print(f'| {name} | ' + ' | '.join(f'{metrics[k]:.2f}' for k in KEYS) + ' |')
    print(f'[demo] done in {time.time() - start:.0f} s')


if __name__ == '__main__':
    main()
