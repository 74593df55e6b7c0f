# Multimodal (MM) teacher: image + audio, all training labels, 15 epochs.
_base_ = [
    '../_base_/datasets/cross_modal_digits.py', '../_base_/schedules/digits.py',
    '../_base_/default_runtime.py', '../_base_/models/xmdigits_multimodal_teacher.py'
]
train_cfg = dict(by_epoch=True, max_epochs=15, val_interval=15)
param_scheduler = [dict(type='CosineAnnealingLR', T_max=15, by_epoch=True, eta_min=1e-4)]
# one checkpoint, at the end (the demo needs only the final teacher)
default_hooks = dict(checkpoint=dict(interval=15))
