# TinyCLIP, automatic weight inheritance, stage 1 of 3, after the prune: the dense
# pruned student (paper: TinyCLIP ViT-63M/32 Text-31M) distilled for the rest of the
# 6 epochs, cosine lr from the prune step without warm-up (TinyCLIP restarts its
# optimizers there). Structure and weights from
#    python tools/model_converters/tinyclip_inherit.py prune \
#        configs/tinyclip/tinyclip-auto_vit-b-32_stage1-masks-s25_8xb1024_laion400m.py \
#        work_dirs/tinyclip-auto_stage1_masks/iter_3000.pth \
#        work_dirs/tinyclip-auto_stage1/pruned_s25.pth
_base_ = ['./tinyclip_vit-b-32-to-vit-61m-32-text-29m_manual-stage1_8xb1024_laion400m.py']
pruned_ckpt = 'work_dirs/tinyclip-auto_stage1/pruned_s25.pth'
prune_step = 3000
model = dict(
    architecture=dict(model_cfg={{_base_.vit_b_32}}, pruned_structure=pruned_ckpt, init_checkpoint=pruned_ckpt))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=292969 - prune_step, by_epoch=False, begin=0,
         end=292969 - prune_step, eta_min=0.0)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=292969 - prune_step)
