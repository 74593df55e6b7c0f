# Teacher of the digits demos: CIFAR-style ResNet-18 (width 32) on all training labels.
_base_ = [
    '../_base_/datasets/digits.py', '../_base_/schedules/digits.py',
    '../_base_/default_runtime.py', '../_base_/models/digits_resnet_teacher.py'
]
train_cfg = dict(by_epoch=True, max_epochs=15, val_interval=15)
param_scheduler = [dict(type='CosineAnnealingLR', T_max=15, by_epoch=True, eta_min=1e-4)]
