# Short AdamW schedule for masked-image pre-training / distillation of tiny ViTs on digits.
# Includes the shared runtime (checkpoint/logger hooks are set here, iteration based).
_base_ = ['../default_runtime.py']
max_iters = 800
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1.5e-3, betas=(0.9, 0.95), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={
        'ln': dict(decay_mult=0.0), 'bias': dict(decay_mult=0.0),
        'pos_embed': dict(decay_mult=0.0), 'mask_token': dict(decay_mult=0.0),
        'cls_token': dict(decay_mult=0.0)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', T_max=max_iters - 100, by_epoch=False, begin=100,
         end=max_iters, eta_min=1e-5),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=max_iters),
                     logger=dict(interval=100))
log_processor = dict(by_epoch=False)
