# TinyCLIP automatic weight inheritance, phase 2: the pruned dense student (structure
# and weights from the mask phase, written by
#   python tools/model_converters/tinyclip_inherit.py prune \
#       configs/tinyclip/tinyclip-auto_vit-w64_masks_digits-shapes_demo.py \
#       work_dirs/tinyclip_demo/auto_masks/iter_150.pth \
#       work_dirs/tinyclip_demo/student_auto_pruned.pth
# ) distilled with affinity mimicking for the remaining 350 iterations, cosine
# learning rate without warm-up (TinyCLIP restarts its optimizer and schedule at the
# prune step the same way).
_base_ = ['./tinyclip_vit-w64-to-w32_digits-shapes_demo.py']
pruned_ckpt = 'work_dirs/tinyclip_demo/student_auto_pruned.pth'
max_iters = 350
model = dict(
    architecture=dict(
        model_cfg={{_base_.teacher_clip}},
        pruned_structure=pruned_ckpt,
        init_checkpoint=pruned_ckpt))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=max_iters, by_epoch=False, begin=0, end=max_iters,
         eta_min=1e-5)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1),
                     logger=dict(interval=50))
