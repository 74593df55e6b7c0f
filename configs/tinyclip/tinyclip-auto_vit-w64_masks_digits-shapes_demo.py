# TinyCLIP automatic weight inheritance, phase 1 (mask learning): the student is the
# teacher itself (initialised from its checkpoint) with hard-concrete masks over
# hidden dims, heads and MLP units of both towers. Distilled with affinity
# mimicking while a Lagrangian drives the expected sparsity of the transformer
# weights to 62.5% (the size of the manual student) over 100 iterations; 150
# iterations in all. Then prune (tools/model_converters/tinyclip_inherit.py prune)
# and continue with tinyclip-auto_vit-w64_pruned_digits-shapes_demo.py (350
# iterations: 500 in all, as every demo student).
_base_ = ['./tinyclip_vit-w64-to-w32_digits-shapes_demo.py']
max_iters = 150
model = dict(
    architecture=dict(
        model_cfg={{_base_.teacher_clip}},
        init_checkpoint={{_base_.teacher_ckpt}},
        sparsity=dict(target_sparsity=0.625, start_sparsity=0.0, warmup_iters=100,
                      prune_types=('hidden', 'heads', 'mlp'), towers=('visual', 'text'))))
# The masks and the Lagrange multipliers train without weight decay. TinyCLIP uses lr
# 0.02 for them over a 3,000-iteration mask phase; this 150-iteration phase uses 0.1
# (100 x the base lr) so that log_alpha can travel as far.
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'l0_masks': dict(lr_mult=100.0, decay_mult=0.0)}))
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1),
                     logger=dict(interval=50))
