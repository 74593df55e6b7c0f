# LLaVA-MoD at the official scale, stage 2 of 3 (mimic distillation, dense-to-sparse):
# the stage-1 student's LLM MLPs become 4 experts with a top-2 router on every other
# decoder layer (MOE_MODE='sparse'), router aux-loss coefficient 0.01; loss = forward KL
# + next-token loss + 0.01 x balance (LOSS_TYPE='kd_lm'); only the MLPs/experts and
# routers train (--train_modules mlp.* wg). Data: 1.4M multi-task samples (VQA, documents,
# science, OCR; MobileVLM-V2 / InternVL packaged json files).
_base_ = ['./llava-mod_stage1-d2d-mimic_clip-l336-qwen2-7b_qwen2-0.5b_fsdp-8xb1-acc8_mimic-data.py']
model = dict(
    student_ckpt='work_dirs/llava_mod/stage1_d2d/iter_final.pth',   # the stage-1 checkpoint
    moe=dict(_delete_=True, num_experts=4, top_k=2, layers='sparse', aux_loss_coef=0.01),
    student_trainable=('mlp.', ),
    lm_loss_weight=1.0)
train_dataloader = dict(dataset=dict(ann_file='mimic_d2s_multitask.json'))
