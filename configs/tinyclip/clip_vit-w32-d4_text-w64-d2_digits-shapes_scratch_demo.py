# Student from scratch (the baseline of the TinyCLIP demo): the student CLIP trained
# alone with the contrastive loss, 500 iterations (as every distilled student).
_base_ = ['./clip_vit-w64-d4_text-w64-d4_digits-shapes_demo.py']
max_iters = 500
warmup_iters = 50
model = dict(model_cfg={{_base_.student_clip}})
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', T_max=max_iters - warmup_iters, by_epoch=False,
         begin=warmup_iters, end=max_iters, eta_min=1e-5),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1),
                     logger=dict(interval=100))
