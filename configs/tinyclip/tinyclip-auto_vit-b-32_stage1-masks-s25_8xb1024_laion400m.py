# TinyCLIP, automatic weight inheritance, stage 1 of 3 (100% -> 75% -> 50% -> 25%),
# mask phase: the student is the ViT-B/32 teacher itself (initialised from its
# weights) with hard-concrete masks over hidden dims, heads and MLP units of both
# towers; one Lagrangian over the joint expected sparsity of the transformer weights
# (--total-loss-flag), target ramped 0 -> 25% over 1,000 iterations
# (--sparsity-warmup), 3,000 iterations (--prune-step), lr warm-up over the whole
# phase (--warmup 3000). Masks and multipliers: lr 0.02, no weight decay.
# Then: tinyclip_inherit.py prune CONFIG work_dirs/.../iter_3000.pth PRUNED.pth and
# tinyclip-auto_vit-b-32_stage1-pruned-s25_8xb1024_laion400m.py.
_base_ = ['./tinyclip_vit-b-32-to-vit-61m-32-text-29m_manual-stage1_8xb1024_laion400m.py']
mask_iters = 3000
model = dict(
    architecture=dict(
        model_cfg={{_base_.vit_b_32}},
        init_checkpoint={{_base_.teacher_ckpt}},
        sparsity=dict(target_sparsity=0.25, start_sparsity=0.0, warmup_iters=1000,
                      prune_types=('hidden', 'heads', 'mlp'), towers=('visual', 'text'))))
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'l0_masks': dict(lr_mult=200.0, decay_mult=0.0)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=mask_iters)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=mask_iters, val_interval=mask_iters)
default_hooks = dict(checkpoint=dict(interval=mask_iters))
