# Wide teacher of the MGD shapes demo: FCN on ResNetV1c-18 of width 32 (twice the
# student's width), trained on the 1/8 labelled images only (as the paper's teachers
# never see the labels of the unlabelled images), 1000 iterations AdamW, seed 0.
_base_ = [
    '../_base_/datasets/shapes_segmentation_semi.py', '../_base_/default_runtime.py',
    '../_base_/schedules/shapes_seg.py', '../_base_/models/fcn_r18-w16_shapes.py'
]
model = dict(
    backbone=dict(base_channels=32, stem_channels=32),
    decode_head=dict(in_channels=256, channels=64),
    auxiliary_head=dict(in_channels=128, channels=32))
train_dataloader = dict(sampler=dict(type='InfiniteSampler', shuffle=True))
default_hooks = dict(checkpoint=dict(by_epoch=False, interval={{_base_.max_iters}}),
                     logger=dict(interval=50))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
