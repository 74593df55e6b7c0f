# LLaVA-KD at the paper's scale, stage 3 of 3: Distilled Fine-Tuning (DFT). The SFT
# student (stage 2) learns from the frozen teacher with CE + alpha * MDist + beta * RDist
# on the 665K instruction mix; projector + LLM train, vision tower frozen. Same recipe as
# stage 2 (lr 2e-5, global batch 128, 1 epoch, bf16, FlexibleRunner + FSDP).
_base_ = ['./llava-kd_stage1-dpt_siglip-so400m_qwen1.5-4b_to_qwen1.5-1.8b_fsdp-8xb32_llava-558k.py']
stage2_ckpt = 'work_dirs/llava_stage2-sft/epoch_1.pth'        # the SFT student
model = dict(architecture=dict(pretrained=stage2_ckpt, trainable=('projector', 'llm')))
train_dataloader = dict(
    batch_size=16,
    dataset=dict(ann_file='llava_v1_5_mix665k.json', image_root='images'))
optim_wrapper = dict(optimizer=dict(lr=2e-5))
