# TinyCLIP, automatic weight inheritance, stage 3 of 3, mask phase: masks on the
# stage-2 pruned student, original teacher; TinyCLIP's 50% -> 75% of ViT-B/32 is
# 0 -> 50% of the stage-2 model. Ramp over 1,000 iterations, 8,000 iterations
# (--prune-step 8000, --warmup 8000).
_base_ = ['./tinyclip-auto_vit-b-32_stage1-masks-s25_8xb1024_laion400m.py']
mask_iters = 8000
model = dict(
    architecture=dict(
        pruned_structure='work_dirs/tinyclip-auto_stage2/pruned_s50.pth',
        init_checkpoint='work_dirs/tinyclip-auto_stage2/iter_287969.pth',
        sparsity=dict(target_sparsity=0.5, start_sparsity=0.0, warmup_iters=1000)))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=mask_iters)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=mask_iters, val_interval=mask_iters)
default_hooks = dict(checkpoint=dict(interval=mask_iters))
