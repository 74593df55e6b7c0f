#!/usr/bin/env python
"""Demo: distilling masked autoencoders (DMAE, G2SD) into a tiny ViT on real digits.

Everything runs through the ordinary CLI (tools/train.py and the converter), on
scikit-learn's 1,797 handwritten digits at 16x16 (patch 4, 16 patches):

  1. a tiny MAE teacher (ViT depth 8, width 128) is pre-trained with MAE, no labels;
  2. the student ViT (depth 4, width 64) is pre-trained on the same images, steps and
     seed three ways: plain MAE, DMAE (from the teacher) and G2SD's generic stage;
  3. each encoder is converted to an mmpretrain ``VisionTransformer`` and fine-tuned
     on the 10% labelled images with one recipe, next to the same student from
     scratch; G2SD's specific stage fine-tunes the G2SD encoder as a DeiT with the
     teacher fine-tuned on those labels (hard labels, and the soft option);
  4. the table of top-1 accuracies on the fixed 359-image val split is printed.

Usage: python tools/demo/mae_distill_demo.py [--work-dir work_dirs/mae_distill_demo]
       [--pretrain-iters N] [--finetune-iters N] [--seeds 3] [--soft] [--threads 1]
"""
import argparse
import glob
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

TEACHER_MAE = 'configs/dmae/mae_vit-d8-w128_p4_digits_demo.py'
STUDENT_MAE = 'configs/dmae/mae_vit-d4-w64_p4_digits_demo.py'
DMAE = 'configs/dmae/dmae_vit-d8-w128_vit-d4-w64_p4_digits_demo.py'
G2SD_GENERIC = 'configs/g2sd/g2sd-generic_vit-d8-w128_vit-d4-w64_p4_digits_demo.py'
FT_SCRATCH = 'configs/dmae/vit-d4-w64_p4_digits-10pct_scratch_demo.py'
FT_MAE = 'configs/dmae/vit-d4-w64_p4_digits-10pct_ft-mae_demo.py'
FT_DMAE = 'configs/dmae/vit-d4-w64_p4_digits-10pct_ft-dmae_demo.py'
FT_G2SD = 'configs/g2sd/vit-d4-w64_p4_digits-10pct_ft-g2sd-generic_demo.py'
FT_TEACHER = 'configs/g2sd/vit-d8-w128_p4_digits-10pct_ft-mae_demo.py'
FT_DEIT_G2SD = 'configs/g2sd/deit-d4-w64_p4_digits-10pct_ft-g2sd-generic_demo.py'
G2SD_SPECIFIC = 'configs/g2sd/g2sd-specific_vit-d8-w128_deit-d4-w64_p4_digits-10pct_demo.py'
G2SD_SPECIFIC_SOFT = ('configs/g2sd/'
                      'g2sd-specific-soft_vit-d8-w128_deit-d4-w64_p4_digits-10pct_demo.py')


class Steps:
    """Runs CLI steps with one environment and keeps their logs."""

    def __init__(self, work: str, threads: int) -> None:
        self.work = work
        self.env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))

    def run(self, cmd, log_path):
        with open(log_path, 'w') as log:
            proc = subprocess.run([sys.executable] + list(cmd), cwd=ROOT, stdout=log,
                                  stderr=subprocess.STDOUT, env=self.env)
        if proc.returncode != 0:
            with open(log_path) as log:
                tail = log.read()[-3000:]
            raise SystemExit(f'step failed: {" ".join(cmd)}\n--- log tail ({log_path}) ---\n{tail}')

    def train(self, name, config, cfg_options=(), metric=None):
        """tools/train.py; returns (last checkpoint, final val metric or None, seconds)."""
        start = time.time()
        work_dir = osp.join(self.work, name)
        os.makedirs(work_dir, exist_ok=True)
        print(f'[demo] {name}: training {config} ...', flush=True)
        cmd = ['tools/train.py', config, '--work-dir', work_dir]
        if cfg_options:
            cmd += ['--cfg-options', *cfg_options]
        self.run(cmd, osp.join(work_dir, 'train.log'))
        with open(osp.join(work_dir, 'last_checkpoint')) as f:
            ckpt = f.read().strip()
        value = None
        if metric:
            # the run validates once, on its last checkpoint (val_interval = max_iters)
            logs = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
            with open(logs[-1]) as f:
                rows = [json.loads(line) for line in f if metric in line]
            value = rows[-1][metric]
        seconds = time.time() - start
        shown = f'{metric} {value:.2f}' if metric else 'done'
        print(f'[demo] {name}: {shown} ({seconds:.0f} s)', flush=True)
        return ckpt, value, seconds

    @staticmethod
    def convert(src, dst, **kwargs):
        """The converter's ``convert`` in-process (same code as the CLI, no start-up)."""
        sys.path.insert(0, osp.join(ROOT, 'tools', 'model_converters'))
        from convert_kd_ckpt_to_student import atomic_torch_save
        from mae_distill_to_vit import convert

        from mmkd.utils.checkpoint import safe_torch_load
        ckpt = safe_torch_load(src)
        out = convert(ckpt.get('state_dict', ckpt), **kwargs)
        atomic_torch_save({'state_dict': out, 'meta': {'converted_from': osp.basename(src)}}, dst)
        return dst


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/mae_distill_demo')
    parser.add_argument('--pretrain-iters', type=int, default=None,
                        help='override the pre-training steps of every pre-training run')
    parser.add_argument('--finetune-iters', type=int, default=None,
                        help='override the steps of every fine-tuning run')
    parser.add_argument('--seeds', type=int, default=3,
                        help='fine-tuning seeds of the student comparison (mean +- std)')
    parser.add_argument('--soft', action='store_true',
                        help="also run the specific stage's soft-label option")
    parser.add_argument('--threads', type=int, default=1,
                        help='OMP threads per run (1 is fastest for these tiny models)')
    args = parser.parse_args(argv)
    work = args.work_dir if osp.isabs(args.work_dir) else osp.join(ROOT, args.work_dir)
    os.makedirs(work, exist_ok=True)
    steps = Steps(work, args.threads)
    start = time.time()
    top1 = 'accuracy/top1'

    def schedule(iters, warmup):
        if iters is None:
            return []
        return [f'train_cfg.max_iters={iters}', f'param_scheduler.1.T_max={iters - warmup}',
                f'param_scheduler.1.end={iters}', f'default_hooks.checkpoint.interval={iters}']

    pre = schedule(args.pretrain_iters, 100)
    fin = schedule(args.finetune_iters, 40)
    if args.finetune_iters is not None:
        fin.append(f'train_cfg.val_interval={args.finetune_iters}')

    # 1. the MAE teacher
    ckpt, _, _ = steps.train('teacher_mae', TEACHER_MAE, pre)
    teacher_mae = osp.join(work, 'teacher_mae_vit-d8-w128_digits.pth')
    shutil.copyfile(ckpt, teacher_mae)

    # 2. the student pre-trained three ways (same data order, steps and seed)
    mae_ckpt, _, _ = steps.train('student_mae', STUDENT_MAE, pre)
    dmae_ckpt, _, dmae_s = steps.train('student_dmae', DMAE, pre + [f'model.teacher_ckpt={teacher_mae}'])
    g2sd_ckpt, _, g2sd_s = steps.train('student_g2sd_generic', G2SD_GENERIC,
                                       pre + [f'model.teacher_ckpt={teacher_mae}'])

    # 3. converters: encoders -> mmpretrain ViT backbones (MAE fine-tuning layout)
    ft = dict(final_norm=False, out_type='avg_featmap')
    teacher_vit = steps.convert(teacher_mae, osp.join(work, 'vit-d8-w128_mae.pth'), **ft)
    vits = {name: steps.convert(ckpt, osp.join(work, f'vit-d4-w64_{name}.pth'), **ft)
            for name, ckpt in (('mae', mae_ckpt), ('dmae', dmae_ckpt), ('g2sd', g2sd_ckpt))}
    deit_g2sd = steps.convert(g2sd_ckpt, osp.join(work, 'deit-d4-w64_g2sd.pth'), distilled=True)

    # 4. fine-tuning on the 10% labelled images, one recipe for all
    def pretrained(path):
        return [f'model.backbone.init_cfg.checkpoint={path}']

    results = {}
    t_ckpt, results['teacher'], _ = steps.train('ft_teacher', FT_TEACHER,
                                                fin + pretrained(teacher_vit), top1)
    student_runs = [('scratch', FT_SCRATCH, []), ('mae', FT_MAE, pretrained(vits['mae'])),
                    ('dmae', FT_DMAE, pretrained(vits['dmae'])),
                    ('g2sd_generic', FT_G2SD, pretrained(vits['g2sd']))]
    for seed in range(args.seeds):
        for name, config, extra in student_runs:
            _, value, _ = steps.train(f'ft_{name}_seed{seed}', config,
                                      fin + extra + [f'randomness.seed={seed}'], top1)
            results.setdefault(name, []).append(value)
    _, results['deit_g2sd_generic'], _ = steps.train(
        'ft_deit_g2sd_generic', FT_DEIT_G2SD, fin + pretrained(deit_g2sd), top1)
    teacher_ft = osp.join(work, 'teacher_vit-d8-w128_ft.pth')
    shutil.copyfile(t_ckpt, teacher_ft)
    spec = ['model.teacher_ckpt=' + teacher_ft,
            'model.architecture.backbone.init_cfg.checkpoint=' + deit_g2sd]
    _, results['g2sd_specific'], _ = steps.train('ft_g2sd_specific', G2SD_SPECIFIC,
                                                 fin + spec, top1)
    if args.soft:
        _, results['g2sd_specific_soft'], _ = steps.train(
            'ft_g2sd_specific_soft', G2SD_SPECIFIC_SOFT, fin + spec, top1)

    def show(value):
        if isinstance(value, list):
            mean = sum(value) / len(value)
            std = (sum((v - mean) ** 2 for v in value) / max(len(value) - 1, 1)) ** 0.5
            seeds = ', '.join(f'{v:.2f}' for v in value)
            return f'{mean:6.2f}  +-{std:4.2f}  ({seeds})'
        return f'{value:6.2f}'

    rows = [
        ('teacher ViT d8-w128: MAE pre-training, fine-tuned*', 'teacher'),
        ('student ViT d4-w64 from scratch', 'scratch'),
        ('  + plain MAE pre-training', 'mae'),
        ('  + DMAE pre-training (from the MAE teacher)', 'dmae'),
        ('  + G2SD generic pre-training', 'g2sd_generic'),
        ('  + G2SD generic; DeiT, fine-tuned without teacher*', 'deit_g2sd_generic'),
        ('  + G2SD generic + specific, hard teacher labels**', 'g2sd_specific'),
        ('  + G2SD generic + specific, soft teacher labels**', 'g2sd_specific_soft'),
    ]
    print()
    print('Digits 16x16 (1,438 train / 359 val), fine-tuned on the 10% labelled images, '
          f'top-1 (%) on val; student rows: mean +-std over seeds 0..{args.seeds - 1}')
    print('-' * 96)
    for name, key in rows:
        if key in results:
            print(f'{name:<52} {show(results[key])}')
    print('-' * 96)
    print('* seed 0 only. ** seed 0; the specific stage also sees the 90% unlabelled '
          'training images, labelled only by the teacher')
    print(f'pre-training time: DMAE {dmae_s:.0f} s, G2SD generic {g2sd_s:.0f} s; '
          f'total {time.time() - start:.0f} s')
    with open(osp.join(work, 'results.json'), 'w') as f:
        json.dump(results, f, indent=2)


if __name__ == '__main__':
    main()
