# Deep teacher of the MGD shapes demo: FCN on ResNetV1c-34 of width 16 (the
# student's width, almost twice its depth), trained on the 1/8 labelled images only,
# 1000 iterations AdamW, seed 0.
_base_ = [
    '../_base_/datasets/shapes_segmentation_semi.py', '../_base_/default_runtime.py',
    '../_base_/schedules/shapes_seg.py', '../_base_/models/fcn_r18-w16_shapes.py'
]
model = dict(backbone=dict(depth=34))
train_dataloader = dict(sampler=dict(type='InfiniteSampler', shuffle=True))
default_hooks = dict(checkpoint=dict(by_epoch=False, interval={{_base_.max_iters}}),
                     logger=dict(interval=50))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
