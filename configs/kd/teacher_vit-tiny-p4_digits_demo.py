# Tiny ViT teacher of the heterogeneous digits demo, trained on all labels.
_base_ = [
    '../_base_/datasets/digits.py', '../_base_/schedules/digits.py',
    '../_base_/default_runtime.py', '../_base_/models/digits_vit_teacher.py'
]
train_cfg = dict(by_epoch=True, max_epochs=30, val_interval=30)
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=1e-3, weight_decay=0.05))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=30, by_epoch=True, eta_min=1e-5)]
