# Baseline student of the LLaVA-KD demo: the tiny student LLaVA (CLIP vision width 64 x 2
# layers, Qwen2 LLM width 64 x 2 layers, random init) trained with supervised
# fine-tuning only (next-token CE on the answers), the same budget as the distilled one.
_base_ = [
    '../_base_/datasets/shapes_vqa.py', '../_base_/models/llava_tiny_shapes.py',
    '../_base_/schedules/llava_demo.py', '../_base_/default_runtime.py'
]
max_iters = 1000
warmup_iters = 50
model = {{_base_.student_llava}}
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', T_max=max_iters - warmup_iters, by_epoch=False,
         begin=warmup_iters, end=max_iters, eta_min=1e-5),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1),
                     logger=dict(interval=100))
log_processor = dict(by_epoch=False)
