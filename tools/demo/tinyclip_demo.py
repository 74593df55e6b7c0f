#!/usr/bin/env python
"""TinyCLIP demo: distil a small open_clip CLIP into a smaller one, offline, on CPU.

Data: generated image-caption pairs (mmkd.DigitsShapesCaptions): real handwritten
digits captioned "a handwritten digit seven" and drawn coloured shapes captioned
"a red circle and a blue star". Trains, through tools/train.py and tools/test.py:

  1. the teacher CLIP (image ViT width 64 x 4 layers, text width 64 x 4 layers),
     1,000 iterations, contrastive loss;
  2. the student (image width 32, text 2 layers) from scratch, contrastive loss;
  3. the student distilled with affinity mimicking, random init;
  4. the same with manual weight inheritance (tinyclip_inherit.py manual);
  5. automatic weight inheritance: 150 iterations of mask learning on the teacher
     (62.5% target sparsity; evaluated with its deterministic masks), prune
     (tinyclip_inherit.py prune), 350 iterations of distillation of the pruned student;
students 2-5 all train 500 iterations (batch 64, seed 0). Prints zero-shot digit
accuracy and shape-caption retrieval R@1 of each on the val split.

Usage: python tools/demo/tinyclip_demo.py [--work-dir work_dirs/tinyclip_demo]
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from common import ROOT, install_checkpoint, last_checkpoint, run  # noqa: E402

CFG = 'configs/tinyclip/'
TEACHER = CFG + 'clip_vit-w64-d4_text-w64-d4_digits-shapes_demo.py'
SCRATCH = CFG + 'clip_vit-w32-d4_text-w64-d2_digits-shapes_scratch_demo.py'
DISTILL = CFG + 'tinyclip_vit-w64-to-w32_digits-shapes_demo.py'
MANUAL = CFG + 'tinyclip_vit-w64-to-w32_manual-inherit_digits-shapes_demo.py'
MASKS = CFG + 'tinyclip-auto_vit-w64_masks_digits-shapes_demo.py'
PRUNED = CFG + 'tinyclip-auto_vit-w64_pruned_digits-shapes_demo.py'
KEYS = ('zero_shot/top1', 'retrieval/i2t_R@1', 'retrieval/t2i_R@1')


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


def student_params(ckpt):
    """Parameters of the student's CLIP in a checkpoint (all, and transformer blocks)."""
    sys.path.insert(0, ROOT)
    from mmkd.utils.checkpoint import load_state_dict_file
    state = load_state_dict_file(ckpt, 'checkpoint')
    prefix = 'architecture.clip.' if any(k.startswith('architecture.clip.') for k in state) else 'clip.'
    clip = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    total = sum(v.numel() for v in clip.values())
    blocks = sum(v.numel() for k, v in clip.items() if 'resblocks' in k)
    return total, blocks


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/tinyclip_demo')
    args = parser.parse_args(argv)
    # tiny models: one thread each is fastest and does not oversubscribe shared CPUs
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    work = args.work_dir if osp.isabs(args.work_dir) else osp.join(ROOT, args.work_dir)
    start = time.time()
    rows = []

    def record(name, config, ckpt, sub, extra=()):
        metrics = test(config, ckpt, osp.join(work, sub), extra)
        rows.append((name, *student_params(ckpt), *[metrics[k] for k in KEYS]))
        print(f'[demo] {name}: ' + ', '.join(f'{k} {metrics[k]:.2f}' for k in KEYS), flush=True)

    ckpt = train('teacher', TEACHER, osp.join(work, 'teacher'))
    teacher = install_checkpoint(ckpt, osp.join(work, 'teacher.pth'))
    record('teacher (1,000 it)', TEACHER, teacher, 'teacher')
    t_opt = ('--cfg-options', f'model.teacher_ckpt={teacher}')

    ckpt = train('student from scratch', SCRATCH, osp.join(work, 'scratch'))
    record('student from scratch', SCRATCH, ckpt, 'scratch')

    ckpt = train('TinyCLIP, no inheritance', DISTILL, osp.join(work, 'distill'), t_opt)
    record('TinyCLIP affinity mimicking, random init', DISTILL, ckpt, 'distill', t_opt)

    inherited = osp.join(work, 'student_inherited.pth')
    run(['tools/model_converters/tinyclip_inherit.py', 'manual', TEACHER, teacher, SCRATCH, inherited],
        osp.join(work, 'inherit_manual.log'))
    opts = (*t_opt, f'model.architecture.init_checkpoint={inherited}')
    ckpt = train('TinyCLIP, manual inheritance', MANUAL, osp.join(work, 'manual'), opts)
    record('TinyCLIP + manual inheritance', MANUAL, ckpt, 'manual', opts)

    opts = (*t_opt, f'model.architecture.init_checkpoint={teacher}')
    ckpt = train('TinyCLIP, automatic inheritance: masks', MASKS, osp.join(work, 'auto_masks'), opts)
    record('  automatic inheritance, after the mask phase', MASKS, ckpt, 'auto_masks', opts)
    pruned = osp.join(work, 'student_auto_pruned.pth')
    run(['tools/model_converters/tinyclip_inherit.py', 'prune', MASKS, ckpt, pruned],
        osp.join(work, 'inherit_auto_prune.log'))
    opts = (*t_opt, f'model.architecture.init_checkpoint={pruned}',
            f'model.architecture.pruned_structure={pruned}')
    ckpt = train('TinyCLIP, automatic inheritance: pruned student', PRUNED, osp.join(work, 'auto_pruned'),
                 opts)
    record('TinyCLIP + automatic inheritance (150 + 350 it)', PRUNED, ckpt, 'auto_pruned', opts)

    print()
    print('Digits+shapes captions (val: 359 digits for zero-shot, 240 shape images for '
          'retrieval); students: 500 iterations')
    header = f'{"model":<48} {"params":>8} {"blocks":>8} {"zero-shot":>9} {"i2t R@1":>8} {"t2i R@1":>8}'
    print(header)
    print('-' * len(header))
    for name, total, blocks, zs, i2t, t2i in rows:
        print(f'{name:<48} {total:>8,} {blocks:>8,} {zs:>8.2f}% {i2t:>7.2f}% {t2i:>7.2f}%')
    print('-' * len(header))
    print(f'total {time.time() - start:.0f} s')
    with open(osp.join(work, 'results.json'), 'w') as f:
        json.dump([dict(zip(('model', 'params', 'block_params', *KEYS), r)) for r in rows], f, indent=1)


if __name__ == '__main__':
    main()
