# Supervised-only baseline of the MGD demo: the FCN R18-w16 student trained on the
# 1/8 labelled shapes images only (38 images), with the MGD demo's schedule and seed
# (1000 iterations, AdamW, batch 4, seed 0).
_base_ = [
    '../_base_/datasets/shapes_segmentation_semi.py', '../_base_/default_runtime.py',
    '../_base_/schedules/shapes_seg.py', '../_base_/models/fcn_r18-w16_shapes.py'
]
max_iters = 1000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters,
                        by_epoch=False)]
train_dataloader = dict(sampler=dict(type='InfiniteSampler', shuffle=True))
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=max_iters),
                     logger=dict(interval=50))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
