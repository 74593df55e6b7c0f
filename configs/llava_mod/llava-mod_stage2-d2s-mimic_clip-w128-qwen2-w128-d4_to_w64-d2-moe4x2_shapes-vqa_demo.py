# LLaVA-MoD demo, stage 2 of 3 (mimic distillation, dense-to-sparse): the stage-1
# student's LLM MLPs are upcycled into 4 experts with a top-2 router on every other
# decoder layer (official MOE_MODE='sparse': layer 0 of 2 here), then trained with
# forward KL + next-token loss + 0.01 x load-balancing loss (official LOSS_TYPE='kd_lm').
# 500 of the 1,000-iteration budget.
_base_ = ['./llava-mod_stage1-d2d-mimic_clip-w128-qwen2-w128-d4_to_w64-d2_shapes-vqa_demo.py']
model = dict(
    student_ckpt='work_dirs/llava_mod_demo/stage1/iter_300.pth',
    moe=dict(_delete_=True, num_experts=4, top_k=2, layers='sparse', aux_loss_coef=0.01),
    lm_loss_weight=1.0)

max_iters = 500
warmup_iters = 25
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', T_max=max_iters - warmup_iters, by_epoch=False,
         begin=warmup_iters, end=max_iters, eta_min=1e-5),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
