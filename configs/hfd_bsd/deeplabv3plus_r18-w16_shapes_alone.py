# The CNN student (DeepLabV3+ R18 w16) of the HFD/BSD shapes demo trained alone (plain mmseg model,
# same data, schedule and seed as the collaborative run).
_base_ = [
    '../_base_/datasets/shapes_segmentation.py', '../_base_/default_runtime.py',
    '../_base_/schedules/shapes_seg.py', '../_base_/models/deeplabv3plus_r18-w16_shapes.py'
]
# 600 iterations (not the 1000 of shapes_seg.py) keep the collaborative run, which
# trains both students, near 5 minutes on one CPU thread.
max_iters = 600
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters,
                        by_epoch=False)]
train_dataloader = dict(sampler=dict(type='InfiniteSampler', shuffle=True))
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=max_iters),
                     logger=dict(interval=50))
log_processor = dict(by_epoch=False)
