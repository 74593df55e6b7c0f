# Teacher of the TinyCLIP demos: a small open_clip CLIP trained from scratch with the
# contrastive loss on the generated digits+shapes captions (no download: built from
# a model config, see ../_base_/models/clip_digits_shapes_demo.py). 1,000 iterations.
_base_ = [
    '../_base_/datasets/digits_shapes_captions.py', '../_base_/models/clip_digits_shapes_demo.py',
    '../_base_/schedules/clip_demo.py', '../_base_/default_runtime.py'
]
max_iters = 1000
warmup_iters = 100
model = dict(
    type='OpenCLIPModel',
    model_cfg={{_base_.teacher_clip}},
    tokenizer={{_base_.tokenizer}},
    zero_shot={{_base_.zero_shot}},
    data_preprocessor={{_base_.data_preprocessor}})
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', T_max=max_iters - warmup_iters, by_epoch=False,
         begin=warmup_iters, end=max_iters, eta_min=1e-5),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1),
                     logger=dict(interval=100))
log_processor = dict(by_epoch=False)
