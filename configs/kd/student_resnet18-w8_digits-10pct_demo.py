# Student alone in the few-label setting: only 10% of the training images keep a label
# (class-stratified, fixed), the others are dropped. Iteration-based so that the
# distilled run (all images, teacher soft labels) gets exactly the same number of steps.
_base_ = [
    '../_base_/datasets/digits.py', '../_base_/schedules/digits.py',
    '../_base_/default_runtime.py', '../_base_/models/digits_resnet_student.py'
]
labelled_fraction = 0.1
max_iters = 600
train_dataloader = dict(
    dataset=dict(labelled_fraction=labelled_fraction, unlabelled='drop'),
    sampler=dict(type='InfiniteSampler', shuffle=True))
train_cfg = dict(_delete_=True, by_epoch=False, max_iters=max_iters, val_interval=max_iters)
param_scheduler = [dict(type='CosineAnnealingLR', T_max=max_iters, by_epoch=False, eta_min=1e-4)]
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=max_iters),
                     logger=dict(interval=50))
log_processor = dict(by_epoch=False)
