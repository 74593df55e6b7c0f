#!/usr/bin/env python
"""MST-Distill demo: cross-modal distillation on digits with an image-only student.

Data: mmkd.CrossModalDigitsDataset, scikit-learn's real 8x8 digits (modality 'img')
plus a derived 1-D "audio" tone whose frequency encodes the true label, in noise
(modality 'audio'). The student sees images only; 10% of the training labels kept.

Trains, through the ordinary CLI (tools/train.py, tools/test.py):
  1. the multimodal teacher (image + audio) and the cross-modal teacher (audio) on all
     training labels;
  2. the student (CIFAR ResNet-18, width 8) alone on the 10% labelled images;
  3. the student with a single cross-modal teacher (KD from the audio teacher);
  4. the student with the average of both teachers' soft labels;
  5. the student with MST-Distill (4 specialised teachers, router, 3 stages), as the
     official code runs the stages (a fresh optimizer per stage, the MaskNets of lowest
     val loss), and once more as mmkd ran them before issue 17 (one optimizer state
     across the stages, the last MaskNets);
all student runs with the same seed, data order and 600 student updates; then
prints top-1 accuracy of each on the fixed val split.

Usage: python tools/demo/mst_distill_demo.py [--work-dir work_dirs/mst_demo] [--reuse-teachers]
       [--threads 1]
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from common import ROOT, install_checkpoint, last_checkpoint, train_and_test  # noqa: E402

FOLDER = 'configs/mst_distill'
TEACHERS = {
    'mm': (f'{FOLDER}/teacher_mm_img-audio_xmdigits_demo.py', 'teacher_mm_img-audio_xmdigits.pth'),
    'audio': (f'{FOLDER}/teacher_cm_audio_xmdigits_demo.py', 'teacher_cm_audio_xmdigits.pth'),
}
STUDENTS = [
    ('student alone (image, 10% labels)', f'{FOLDER}/student_resnet18-w8_xmdigits-10pct_demo.py',
     'student', ()),
    ('+ single cross-modal teacher (audio), KD', (
        f'{FOLDER}/kd-cm-teacher_audio_resnet18-w8_xmdigits-10pct_demo.py'), 'kd_audio', ('audio', )),
    ('+ average of teachers (MM + audio)', (
        f'{FOLDER}/avg-teachers_mm-audio_resnet18-w8_xmdigits-10pct_demo.py'), 'avg', ('mm', 'audio')),
    ('+ MST-Distill (4 specialised teachers, top-1)', (
        f'{FOLDER}/mst-distill_mm-audio_resnet18-w8_xmdigits-10pct_demo.py'), 'mst', ('mm', 'audio')),
    ('  MST-Distill, one optimizer state, last MaskNets', (
        f'{FOLDER}/mst-distill_mm-audio_resnet18-w8_xmdigits-10pct_demo.py'),
     'mst_one_optim_last_masknets', ('mm', 'audio')),
]
# Options of a run besides its teachers: MST-Distill as mmkd ran it before issue 17.
EXTRA = {
    'mst_one_optim_last_masknets': ('custom_hooks.0.fresh_optimizer_per_stage=False',
                                    'custom_hooks.0.keep_best_masknet=False'),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/mst_demo')
    parser.add_argument('--reuse-teachers', action='store_true',
                        help='use teacher checkpoints already in the work dir')
    parser.add_argument('--threads', type=int, default=1,
                        help='OMP threads of each training process (default 1: these models '
                        'are tiny, more threads mostly spin on a shared CPU)')
    args = parser.parse_args(argv)
    os.environ['OMP_NUM_THREADS'] = str(args.threads)  # inherited by the CLI steps
    work = args.work_dir if osp.isabs(args.work_dir) else osp.join(ROOT, args.work_dir)
    start = time.time()
    top1 = 'accuracy/top1'
    results, files = {}, {}
    for name, (config, file_name) in TEACHERS.items():
        target = osp.join(work, file_name)
        run_dir = osp.join(work, f'teacher_{name}')
        if args.reuse_teachers and osp.isfile(target):
            with open(osp.join(run_dir, 'test_metrics.json')) as f:
                results[f'teacher_{name}'] = json.load(f)[top1]
            print(f'[demo] reusing {target}', flush=True)
        else:
            results[f'teacher_{name}'], ckpt = train_and_test(f'teacher {name}', config, run_dir, top1)
            install_checkpoint(ckpt, target)
        files[name] = target
    for label, config, key, teachers in STUDENTS:
        extra = ()
        if teachers:
            extra = ('--cfg-options', *[f'model.teachers.{t}.ckpt={files[t]}' for t in teachers],
                     *EXTRA.get(key, ()))
        results[key], _ = train_and_test(label, config, osp.join(work, key), top1, extra=extra)
    assert last_checkpoint(osp.join(work, 'mst')).endswith('iter_700.pth')

    rows = [
        ('teacher: multimodal (image + audio), 100% labels', results['teacher_mm']),
        ('teacher: cross-modal (audio only), 100% labels', results['teacher_audio']),
    ] + [(label, results[key]) for label, _, key, _ in STUDENTS]
    print()
    print('Cross-modal digits (1,438 train / 359 val); students see images only; top-1 on val')
    print('-' * 64)
    for name, value in rows:
        print(f'{name:<54} {value:6.2f}%')
    print('-' * 64)
    print(f'MST-Distill vs student alone: {results["mst"] - results["student"]:+.2f} points, '
          f'vs average of teachers: {results["mst"] - results["avg"]:+.2f} points, '
          f'official stages vs one optimizer state and the last MaskNets: '
          f'{results["mst"] - results["mst_one_optim_last_masknets"]:+.2f} points '
          f'(total {time.time() - start:.0f} s)')
    with open(osp.join(work, 'results.json'), 'w') as f:
        json.dump(results, f, indent=2)


if __name__ == '__main__':
    main()
