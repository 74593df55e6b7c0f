# LLaVA-MoD on the shapes VQA demo, stage 1 of 3 (mimic distillation, dense-to-dense):
# the dense tiny student (CLIP w64 x 2, Qwen2 w64 x 2, random init) learns the frozen
# tiny teacher's next-token distributions on the answers (forward KL only, as the
# official dense2dense script's LOSS_TYPE='only_kd'). The three stages together use the
# budget of the SFT-only and LLaVA-KD students (configs/llava_kd): 1,000 iterations of
# 32 questions = 300 (stage 1) + 500 (stage 2) + 200 (stage 3).
_base_ = [
    '../_base_/datasets/shapes_vqa.py', '../_base_/models/llava_tiny_shapes.py',
    '../_base_/schedules/llava_demo.py', '../_base_/default_runtime.py'
]
teacher_ckpt = 'work_dirs/llava_kd_demo/teacher.pth'   # configs/llava_kd/llava_clip-w128-..._teacher_demo.py
model = dict(
    _scope_='mmkd',
    type='LlavaMoDDistill',
    architecture={{_base_.student_llava}},
    teacher={{_base_.teacher_llava}},
    teacher_ckpt=teacher_ckpt,
    stage='mimic',
    moe=None,                                          # still dense
    mimic_loss=dict(type='MimicKLLoss', positions='response'),
    lm_loss_weight=0.0)

max_iters = 300
warmup_iters = 30
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', T_max=max_iters - warmup_iters, by_epoch=False,
         begin=warmup_iters, end=max_iters, eta_min=1e-5),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1),
                     logger=dict(interval=50))
log_processor = dict(by_epoch=False)
