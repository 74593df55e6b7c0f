# LLaVA-KD on the shapes VQA demo: the tiny student (same model, data and 1,000
# iterations as llava_clip-w64-qwen2-w64-d2_shapes-vqa_sft_demo.py) trained with
# CE + alpha * MDist + beta * RDist from the frozen tiny teacher (distilled fine-tuning,
# every part of the student trains). MDist: forward KL at the response positions and at
# the positions predicting visual tokens; RDist: 1 - cos of the visual tokens' logit
# self-correlation matrices; alpha = beta = 1.
_base_ = ['./llava_clip-w64-qwen2-w64-d2_shapes-vqa_sft_demo.py']
teacher_ckpt = 'work_dirs/llava_kd_demo/teacher.pth'
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='LlavaKDDistill',
    architecture={{_base_.student_llava}},
    teacher={{_base_.teacher_llava}},
    teacher_ckpt=teacher_ckpt,
    mdist=dict(type='MDistLoss', loss_weight=1.0, response_weight=1.0, visual_weight=1.0,
               tau=1.0, direction='forward'),
    rdist=dict(type='RDistLoss', loss_weight=1.0),
    rdist_source='logits',
    ce_weight=1.0)
