# TinyCLIP, automatic weight inheritance, stage 3 of 3, after the prune (paper:
# TinyCLIP ViT-22M/32 Text-10M): the rest of the 6 epochs, cosine from the prune step.
#    python tools/model_converters/tinyclip_inherit.py prune \
#        configs/tinyclip/tinyclip-auto_vit-b-32_stage3-masks-s75_8xb1024_laion400m.py \
#        work_dirs/tinyclip-auto_stage3_masks/iter_8000.pth \
#        work_dirs/tinyclip-auto_stage3/pruned_s75.pth
_base_ = ['./tinyclip-auto_vit-b-32_stage1-pruned-s25_8xb1024_laion400m.py']
pruned_ckpt = 'work_dirs/tinyclip-auto_stage3/pruned_s75.pth'
prune_step = 8000
model = dict(architecture=dict(pruned_structure=pruned_ckpt, init_checkpoint=pruned_ckpt))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=292969 - prune_step, by_epoch=False, begin=0,
         end=292969 - prune_step, eta_min=0.0)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=292969 - prune_step)
