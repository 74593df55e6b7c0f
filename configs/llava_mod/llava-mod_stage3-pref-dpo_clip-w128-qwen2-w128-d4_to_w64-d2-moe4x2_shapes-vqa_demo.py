# LLaVA-MoD demo, stage 3 of 3 (preference distillation): DPO on (correct, wrong)
# answer pairs with the frozen teacher as the reference model (beta 0.1, the official
# trainer's default) + the balance loss; learning rate 10x below stage 2, as the
# official scripts (2e-6 vs 2e-5). 200 of the 1,000-iteration budget.
_base_ = ['./llava-mod_stage2-d2s-mimic_clip-w128-qwen2-w128-d4_to_w64-d2-moe4x2_shapes-vqa_demo.py']
model = dict(
    stage='preference',
    student_ckpt='work_dirs/llava_mod_demo/stage2/iter_500.pth',
    preference_loss=dict(type='DPOLoss', beta=0.1),
    lm_loss_weight=0.0)

max_iters = 200
warmup_iters = 10
optim_wrapper = dict(optimizer=dict(lr=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', T_max=max_iters - warmup_iters, by_epoch=False,
         begin=warmup_iters, end=max_iters, eta_min=1e-6),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
