# LLaVA-MoD at the official scale, stage 3 of 3 (preference distillation), as the
# official shells/train/qwen/preference_distillation.sh: KTO-pair loss (beta 0.1) with the
# frozen dense teacher as the reference model on RLAIF-V's 80K preference pairs,
# lr 2e-6, MoE balance loss kept, MLPs/experts/routers train.
_base_ = ['./llava-mod_stage2-d2s-mimic_clip-l336-qwen2-7b_qwen2-0.5b-moe4x2_fsdp-8xb1-acc8_mimic-data.py']
model = dict(
    stage='preference',
    student_ckpt='work_dirs/llava_mod/stage2_d2s/iter_final.pth',
    preference_loss=dict(type='KTOPairLoss', beta=0.1),
    lm_loss_weight=0.0)
pipeline = [dict(type='PackVQAInputs', tokenizer={{_base_.tokenizer}},
                 num_image_tokens={{_base_.num_image_tokens}}, with_preference=True)]
train_dataloader = dict(dataset=dict(ann_file='rlaif-v_preference.json', preference=True, pipeline=pipeline))
optim_wrapper = dict(optimizer=dict(lr=2e-6))
