# Short AdamW fine-tuning schedule for tiny ViTs on the labelled digits (iteration based,
# Includes the shared runtime (checkpoint/logger hooks are set here, iteration based).
_base_ = ['../default_runtime.py']
# so every fine-tuning run of a comparison takes the same number of steps).
max_iters = 400
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={
        'ln': dict(decay_mult=0.0), 'bias': dict(decay_mult=0.0),
        'pos_embed': dict(decay_mult=0.0), 'cls_token': dict(decay_mult=0.0),
        'dist_token': dict(decay_mult=0.0)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=40),
    dict(type='CosineAnnealingLR', T_max=max_iters - 40, by_epoch=False, begin=40,
         end=max_iters, eta_min=1e-5),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=max_iters),
                     logger=dict(interval=50))
log_processor = dict(by_epoch=False)
