#!/usr/bin/env python
"""Time a DMAE step with the truncated teacher against the same step with the full teacher.

DMAE's efficiency point: the teacher runs on the visible patches only and only up to
the aligned block. This script builds a ``MaskedImageDistill`` config once and, in one
process, on the same model and batch, alternates training steps (forward, backward,
AdamW step) with the teacher forward

  * truncated: ``teacher_early_exit=True`` (stops once the aligned block is recorded),
  * full: ``teacher_early_exit=False`` (all encoder blocks, decoder, pixel prediction),

and reports, per variant, the teacher blocks that ran, the median teacher-forward time
and the median step time, and the saving. Weights are random (``teacher_ckpt`` is not
loaded): the time does not depend on them. Inputs are random images of the model's
``img_size``.

Usage::

    python tools/benchmark/dmae_truncated_teacher.py CONFIG [--batch-size 64]
        [--iters 20] [--warmup 3] [--device cpu|cuda] [--amp] [--mask-ratio R]
        [--out work_dirs/benchmark/dmae_truncated_teacher.json]
"""
import argparse
import json
import os
import os.path as osp
import statistics
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config', help='a MaskedImageDistill config (e.g. configs/dmae/*.py)')
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--iters', type=int, default=20, help='timed rounds (each: both variants)')
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--device', default=None, help='cpu or cuda (default: cuda if available)')
    p.add_argument('--amp', action='store_true', help='bfloat16 autocast (CUDA)')
    p.add_argument('--mask-ratio', type=float, default=None, help="override the config's")
    p.add_argument('--out', default='work_dirs/benchmark/dmae_truncated_teacher.json')
    return p.parse_args(argv)


def build(cfg_path, mask_ratio):
    import warnings

    from mmengine.config import Config
    from mmengine.logging import MMLogger

    # quiet: the per-parameter initialisation report of init_weights is long
    MMLogger.get_instance('dmae_truncated_teacher', log_level='ERROR')

    import mmkd.models  # noqa: F401  (registers the algorithm, losses, connectors)
    from mmkd.registry import MODELS
    cfg = Config.fromfile(cfg_path)
    model_cfg = cfg.model
    if model_cfg.get('type') != 'MaskedImageDistill':
        raise SystemExit(f'error: {cfg_path} is not a MaskedImageDistill config '
                         f"(model.type={model_cfg.get('type')!r})")
    model_cfg.teacher_ckpt = None  # random weights: the timing does not depend on them
    if mask_ratio is not None:
        model_cfg.mask_ratio = mask_ratio
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        model = MODELS.build(model_cfg)
    model.init_weights()
    return model


def count_blocks(mae, counter):
    """Pre-hooks: a block counts when it starts (the early exit fires after it ran)."""
    blocks = list(mae.backbone.layers) + list(getattr(mae.neck, 'decoder_blocks', []))
    for block in blocks:
        block.register_forward_pre_hook(lambda *_: counter.__setitem__(0, counter[0] + 1))
    return len(mae.backbone.layers), len(blocks) - len(mae.backbone.layers)


def main(argv=None):
    args = parse_args(argv)
    import contextlib

    import torch
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    model = build(args.config, args.mask_ratio).to(device)
    model.train()
    teacher = model.teacher
    ran = [0]
    n_enc, n_dec = count_blocks(teacher, ran)
    size = model.architecture.backbone.img_size
    gen = torch.Generator().manual_seed(0)
    inputs = torch.randn(args.batch_size, 3, *size, generator=gen).to(device)
    optim = torch.optim.AdamW(model.parameters(), lr=1e-4)
    autocast = (torch.autocast('cuda', dtype=torch.bfloat16) if args.amp
                else contextlib.nullcontext())

    def sync():
        if device.startswith('cuda'):
            torch.cuda.synchronize()

    def teacher_forward():
        masks = model.draw_mask(inputs)
        with torch.no_grad(), model.distiller.teacher_recorders, autocast:
            model.run_mae(teacher, inputs, masks, with_loss=False)
        model.distiller.teacher_recorders.reset()

    def train_step():
        with autocast:
            losses = model.loss(inputs)
        loss = sum(losses.values())
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()

    variants = {'truncated': True, 'full': False}
    times = {v: {'teacher': [], 'step': []} for v in variants}
    blocks = {}
    for round_idx in range(args.warmup + args.iters):
        for name, early in variants.items():  # interleaved: both see the same conditions
            model.set_teacher_early_exit(early)
            ran[0] = 0
            sync()
            t0 = time.perf_counter()
            teacher_forward()
            sync()
            t1 = time.perf_counter()
            blocks[name] = ran[0]
            train_step()
            sync()
            t2 = time.perf_counter()
            if round_idx >= args.warmup:
                times[name]['teacher'].append((t1 - t0) * 1000)
                times[name]['step'].append((t2 - t1) * 1000)

    med = {v: {k: statistics.median(x) for k, x in t.items()} for v, t in times.items()}
    saving_teacher = 1 - med['truncated']['teacher'] / med['full']['teacher']
    saving_step = 1 - med['truncated']['step'] / med['full']['step']
    dev_name = torch.cuda.get_device_name() if device.startswith('cuda') else 'CPU'
    threads = torch.get_num_threads()
    t_vit, s_vit = teacher.backbone, model.architecture.backbone
    print(f'config: {args.config}')
    print(f'device: {dev_name} ({device}, {threads} CPU threads), batch {args.batch_size}, '
          f'{"bf16 autocast" if args.amp else "fp32"}, mask ratio {model.mask_ratio}, '
          f'{args.iters} timed rounds after {args.warmup} warm-up, medians')
    print(f'teacher: {n_enc} encoder + {n_dec} decoder blocks, width {t_vit.embed_dims}; '
          f'student: {len(s_vit.layers)} blocks, width {s_vit.embed_dims}; image '
          f'{tuple(size)}, {model.num_patches} patches, '
          f'{int(model.num_patches * (1 - model.mask_ratio))} visible')
    print(f'{"teacher forward":<16} {"blocks run":>10} {"teacher ms":>11} {"DMAE step ms":>13}')
    for name in variants:
        print(f'{name:<16} {blocks[name]:>10} {med[name]["teacher"]:>11.2f} '
              f'{med[name]["step"]:>13.2f}')
    print(f'saving of the truncated teacher: teacher forward {saving_teacher:.1%}, '
          f'whole step {saving_step:.1%}')
    result = dict(config=args.config, device=dev_name, batch_size=args.batch_size,
                  amp=args.amp, mask_ratio=model.mask_ratio, blocks=blocks, median_ms=med,
                  saving_teacher=saving_teacher, saving_step=saving_step,
                  teacher_blocks=dict(encoder=n_enc, decoder=n_dec), threads=threads)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(result, f, indent=2)
    return result


if __name__ == '__main__':
    main()
