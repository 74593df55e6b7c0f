# TinyCLIP, automatic weight inheritance, stage 2 of 3, after the prune (paper:
# TinyCLIP ViT-45M/32 Text-18M): the rest of the 6 epochs, cosine from the prune step.
#    python tools/model_converters/tinyclip_inherit.py prune \
#        configs/tinyclip/tinyclip-auto_vit-b-32_stage2-masks-s50_8xb1024_laion400m.py \
#        work_dirs/tinyclip-auto_stage2_masks/iter_5000.pth \
#        work_dirs/tinyclip-auto_stage2/pruned_s50.pth
_base_ = ['./tinyclip-auto_vit-b-32_stage1-pruned-s25_8xb1024_laion400m.py']
pruned_ckpt = 'work_dirs/tinyclip-auto_stage2/pruned_s50.pth'
prune_step = 5000
model = dict(architecture=dict(pruned_structure=pruned_ckpt, init_checkpoint=pruned_ckpt))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=292969 - prune_step, by_epoch=False, begin=0,
         end=292969 - prune_step, eta_min=0.0)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=292969 - prune_step)
