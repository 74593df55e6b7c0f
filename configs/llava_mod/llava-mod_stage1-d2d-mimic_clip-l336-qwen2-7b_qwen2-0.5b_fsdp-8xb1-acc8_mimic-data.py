# LLaVA-MoD at the official scale, stage 1 of 3 (mimic distillation, dense-to-dense).
# Teacher: LLaVA-1.5-style CLIP-ViT-L/14-336 + Qwen2-7B (trained as LLaVA-1.5, frozen, bf16).
# Student: CLIP-ViT-L/14-336 + Qwen2-0.5B with its adaptor initialised on LLaVA-Pretrain
# (the official "Adaptor Initialization" step). Settings of the official
# shells/train/qwen/dense2dense_distillation.sh: forward KL on the response tokens only
# (only_kd), bf16, lr 2e-5 cosine with 3% warm-up, 1 epoch, batch 1 per GPU x 8
# accumulation. Training runs under mmengine's FlexibleRunner with FSDP (every
# decoder/encoder layer one FSDP unit, bf16 compute) and activation checkpointing.
# Paths are placeholders: put the checkpoints and data there (nothing is downloaded).
_base_ = ['../_base_/default_runtime.py']
default_scope = 'mmkd'

ckpt_root = 'checkpoints'
data_root = 'data/llava_mod'
clip_l336 = f'{ckpt_root}/clip-vit-large-patch14-336'
qwen2_05b = f'{ckpt_root}/Qwen2-0.5B'
teacher_llava = f'{ckpt_root}/llava-qwen2-7b'                  # an HF LlavaForConditionalGeneration folder
student_projector = f'{ckpt_root}/llavaqwen-2-0.5b-pretrain/mm_projector.bin'
tokenizer = dict(type='HFChatTokenizer', path=qwen2_05b)       # Qwen2's tokenizer, shared by both

num_image_tokens = 576                                          # (336 / 14)^2, CLS dropped
vision_cfg = dict(model_type='clip_vision_model', hidden_size=1024, intermediate_size=4096,
                  num_hidden_layers=24, num_attention_heads=16, image_size=336, patch_size=14,
                  projection_dim=768)
qwen2_7b_cfg = dict(model_type='qwen2', hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                    num_attention_heads=28, num_key_value_heads=4, vocab_size=152064,
                    max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6)
qwen2_05b_cfg = dict(model_type='qwen2', hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                     num_attention_heads=14, num_key_value_heads=2, vocab_size=151936,
                     max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
                     tie_word_embeddings=True)
llava_common = dict(type='LlavaModel', _scope_='mmkd', vision_config=vision_cfg, tokenizer=tokenizer,
                    vision_feature_layer=-2, projector_hidden_act='gelu', max_new_tokens=128)
teacher_model = dict(llava_common, text_config=qwen2_7b_cfg, pretrained=teacher_llava)
student_model = dict(llava_common, text_config=qwen2_05b_cfg, gradient_checkpointing=True,
                     pretrained=dict(vision_tower=clip_l336, language_model=qwen2_05b,
                                     projector=student_projector),
                     trainable=('projector', 'llm'))

model = dict(
    type='LlavaMoDDistill',
    architecture=student_model,
    teacher=teacher_model,
    teacher_precision='bf16', teacher_precision_mode='cast',   # frozen, no grads, half the memory
    stage='mimic',
    moe=None,
    # Qwen2-7B pads its vocabulary to 152064 rows, Qwen2-0.5B to 151936: same tokenizer,
    # compare the shared 151936 ids (as the official code does).
    check_vocabulary=False,
    mimic_loss=dict(type='MimicKLLoss', positions='response', vocab_size=151936),
    lm_loss_weight=0.0)

pipeline = [dict(type='PackVQAInputs', tokenizer=tokenizer, num_image_tokens=num_image_tokens,
                 with_preference=False)]
train_dataloader = dict(
    batch_size=1, num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    # ShareGPT4V-Captioner, ALLaVA-Caption-LAION-4V and the general conversation sets,
    # merged into one LLaVA-format json (e.g. MoE-LLaVA's packaged files)
    dataset=dict(type='LlavaJsonDataset', data_root=data_root, ann_file='mimic_d2d_general.json',
                 image_root='images', img_size=336, pipeline=pipeline))
val_dataloader = None
val_cfg = None
val_evaluator = None

runner_type = 'FlexibleRunner'
strategy = dict(
    type='FSDPStrategy',
    model_wrapper=dict(
        type='mmkd.LLMFullyShardedDataParallel',
        wrap_layer_names=['Qwen2DecoderLayer', 'CLIPEncoderLayer'],
        mixed_precision=dict(param_dtype='bfloat16', reduce_dtype='float32', buffer_dtype='float32'),
        use_orig_params=True),   # frozen vision tower next to trained parameters
    state_dict_cfg='full')
env_cfg = dict(dist_cfg=dict(backend='nccl'))
optim_wrapper = dict(type='OptimWrapper', accumulative_counts=8,
                     optimizer=dict(type='AdamW', lr=2e-5, weight_decay=0.0, betas=(0.9, 0.999)),
                     clip_grad=dict(max_norm=1.0))
max_epochs = 1
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=0.03, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0.03, end=max_epochs, eta_min=0.0,
         convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=1000, max_keep_ckpts=2),
                     logger=dict(interval=10))
log_processor = dict(by_epoch=False)
