# TinyCLIP's training recipe (github microsoft/Cream, TinyCLIP/script/*.sh and
# src/training/params.py): AdamW lr 1e-4, betas (0.9, 0.98), eps 1e-6, weight decay
# 0.2 (not on gains, biases, norms, logit scale), gradient clipping at norm 5, AMP,
# 8 GPUs x 1024 pairs, 6 epochs of LAION-400M (2.4e9 pairs = 292,969 iterations).
epoch_iters = 48828  # 400M pairs / 8192 per iteration
max_iters = 6 * epoch_iters + 1
warmup_iters = 2000
optim_wrapper = dict(
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.2),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0,
                       custom_keys={'logit_scale': dict(decay_mult=0.0),
                                    'positional_embedding': dict(decay_mult=0.0),
                                    'class_embedding': dict(decay_mult=0.0)}),
    clip_grad=dict(max_norm=5.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', T_max=max_iters - warmup_iters, by_epoch=False,
         begin=warmup_iters, end=max_iters, eta_min=0.0),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=epoch_iters)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=8192, enable=False)
