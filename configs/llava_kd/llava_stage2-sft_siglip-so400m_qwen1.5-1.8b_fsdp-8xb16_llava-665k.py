# LLaVA-KD at the paper's scale, stage 2 of 3: Supervised Fine-Tuning (SFT) of the student
# alone (no teacher): next-token CE on the answers of LLaVA-1.5's 665K instruction mix,
# projector + LLM train, vision tower frozen. Starts from the stage-1 (DPT) checkpoint.
# Recipe (TinyLLaVA/LLaVA-1.5 fine-tuning): 1 epoch, global batch 128 (8 x 16), lr 2e-5,
# cosine with 3% warm-up, bf16, activation checkpointing, FlexibleRunner + FSDP.
_base_ = ['./llava-kd_stage1-dpt_siglip-so400m_qwen1.5-4b_to_qwen1.5-1.8b_fsdp-8xb32_llava-558k.py']
stage1_ckpt = 'work_dirs/llava-kd_stage1-dpt/epoch_1.pth'      # the DPT student (architecture.*)
model = dict(
    _delete_=True,
    type='LlavaModel',
    _scope_='mmkd',
    vision_config={{_base_.siglip_cfg}},
    text_config={{_base_.qwen1_5_1_8b_cfg}},
    tokenizer={{_base_.tokenizer}},
    vision_feature_layer=-2,
    projector_hidden_act='gelu',
    max_new_tokens=128,
    gradient_checkpointing=True,
    pretrained=stage1_ckpt,
    trainable=('projector', 'llm'),
    data_preprocessor=dict(type='LlavaDataPreprocessor', mean=[127.5] * 3, std=[127.5] * 3))
train_dataloader = dict(
    batch_size=16,
    # LLaVA-1.5's instruction mix: llava_v1_5_mix665k.json + COCO/GQA/OCR-VQA/TextVQA/VG images
    dataset=dict(ann_file='llava_v1_5_mix665k.json', image_root='images'))
optim_wrapper = dict(optimizer=dict(lr=2e-5))
