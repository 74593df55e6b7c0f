# TinyCLIP, automatic weight inheritance, stage 2 of 3, mask phase: masks on the
# stage-1 pruned student (structure from its pruned checkpoint, weights from the end
# of stage 1), original ViT-B/32 teacher. TinyCLIP ramps the sparsity of the full
# ViT-B/32 from 25% to 50%; mmkd's masks measure sparsity relative to the model they
# sit on, so the same step is 0 -> 1/3 of the stage-1 model (0.75 x 2/3 = 0.5 of the
# original). Ramp over 1,000 iterations, 5,000 iterations (--prune-step 5000,
# --warmup 5000).
_base_ = ['./tinyclip-auto_vit-b-32_stage1-masks-s25_8xb1024_laion400m.py']
mask_iters = 5000
model = dict(
    architecture=dict(
        pruned_structure='work_dirs/tinyclip-auto_stage1/pruned_s25.pth',
        init_checkpoint='work_dirs/tinyclip-auto_stage1/iter_289969.pth',
        sparsity=dict(target_sparsity=1 / 3, start_sparsity=0.0, warmup_iters=1000)))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=mask_iters)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=mask_iters, val_interval=mask_iters)
default_hooks = dict(checkpoint=dict(interval=mask_iters))
