# Plain mmseg FCN (student of the shapes segmentation demos), no distillation.
_base_ = [
    '../_base_/datasets/shapes_segmentation.py', '../_base_/default_runtime.py',
    '../_base_/schedules/shapes_seg.py', '../_base_/models/fcn_r18-w16_shapes.py'
]
# iteration-based loop: infinite sampler, iteration-based checkpoints and logs
train_dataloader = dict(sampler=dict(type='InfiniteSampler', shuffle=True))
default_hooks = dict(checkpoint=dict(by_epoch=False, interval={{_base_.max_iters}}),
                     logger=dict(interval=50))
log_processor = dict(by_epoch=False)
