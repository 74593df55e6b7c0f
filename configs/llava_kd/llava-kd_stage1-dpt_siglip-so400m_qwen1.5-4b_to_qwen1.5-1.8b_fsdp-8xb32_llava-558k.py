# LLaVA-KD at the paper's scale, stage 1 of 3: Distilled Pre-Training (DPT).
# Teacher (l-MLLM): SigLIP-so400m/14-384 + Qwen1.5-4B, a trained LLaVA (HF
# LlavaForConditionalGeneration folder), frozen, bf16, no gradients, not sharded.
# Student (s-MLLM): SigLIP-so400m/14-384 + Qwen1.5-1.8B from their pre-trained weights;
# in DPT only the projector trains (vision tower and LLM frozen) with
# CE + alpha * MDist + beta * RDist on LLaVA-1.5's 558K image-caption pairs.
# Recipe (TinyLLaVA/LLaVA-1.5 pre-training, which LLaVA-KD builds on): 1 epoch, global
# batch 256 (8 GPUs x 32), lr 1e-3, cosine with 3% warm-up, bf16, activation
# checkpointing. Runs with mmengine's FlexibleRunner + FSDP (one unit per decoder /
# encoder layer). Paths are placeholders: nothing is downloaded.
_base_ = ['../_base_/default_runtime.py']
default_scope = 'mmkd'

ckpt_root = 'checkpoints'
data_root = 'data/llava'
siglip = f'{ckpt_root}/siglip-so400m-patch14-384'            # HF SiglipModel folder (vision half used)
qwen_1_8b = f'{ckpt_root}/Qwen1.5-1.8B'                      # HF Qwen2ForCausalLM folder
teacher_llava = f'{ckpt_root}/llava-siglip-so400m-qwen1.5-4b'  # HF LlavaForConditionalGeneration folder
tokenizer = dict(type='HFChatTokenizer', path=qwen_1_8b)     # Qwen1.5's tokenizer (+ <image>), shared

img_size = 384
num_image_tokens = (384 // 14)**2                             # 729 SigLIP patches, no CLS
siglip_cfg = dict(model_type='siglip_vision_model', hidden_size=1152, intermediate_size=4304,
                  num_hidden_layers=27, num_attention_heads=16, image_size=img_size, patch_size=14)
qwen1_5_1_8b_cfg = dict(model_type='qwen2', hidden_size=2048, intermediate_size=5504,
                        num_hidden_layers=24, num_attention_heads=16, num_key_value_heads=16,
                        vocab_size=151936, max_position_embeddings=32768, rope_theta=1000000.0,
                        rms_norm_eps=1e-6, tie_word_embeddings=False)
qwen1_5_4b_cfg = dict(model_type='qwen2', hidden_size=2560, intermediate_size=6912,
                      num_hidden_layers=40, num_attention_heads=20, num_key_value_heads=20,
                      vocab_size=151936, max_position_embeddings=32768, rope_theta=5000000.0,
                      rms_norm_eps=1e-6, tie_word_embeddings=False)
llava_common = dict(type='LlavaModel', _scope_='mmkd', vision_config=siglip_cfg, tokenizer=tokenizer,
                    vision_feature_layer=-2, projector_hidden_act='gelu', max_new_tokens=128,
                    data_preprocessor=dict(type='LlavaDataPreprocessor', mean=[127.5] * 3,
                                           std=[127.5] * 3))
teacher_model = dict(llava_common, text_config=qwen1_5_4b_cfg, pretrained=teacher_llava)
student_model = dict(llava_common, text_config=qwen1_5_1_8b_cfg, gradient_checkpointing=True,
                     pretrained=dict(vision_tower=siglip, language_model=qwen_1_8b),
                     trainable=('projector', ))

model = dict(
    type='LlavaKDDistill',
    architecture=student_model,
    teacher=teacher_model,
    teacher_precision='bf16', teacher_precision_mode='cast',
    mdist=dict(type='MDistLoss', loss_weight=1.0, response_weight=1.0, visual_weight=1.0, tau=1.0,
               direction='forward'),
    rdist=dict(type='RDistLoss', loss_weight=1.0),
    rdist_source='logits',
    ce_weight=1.0)

pipeline = [dict(type='PackVQAInputs', tokenizer=tokenizer, num_image_tokens=num_image_tokens,
                 with_preference=False)]
train_dataloader = dict(
    batch_size=32, num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    # LLaVA-1.5 pre-training captions: blip_laion_cc_sbu_558k.json + images/
    dataset=dict(type='LlavaJsonDataset', data_root=data_root,
                 ann_file='LLaVA-Pretrain/blip_laion_cc_sbu_558k.json',
                 image_root='LLaVA-Pretrain/images', img_size=img_size, pipeline=pipeline))
val_dataloader = None
val_cfg = None
val_evaluator = None

runner_type = 'FlexibleRunner'
strategy = dict(
    type='FSDPStrategy',
    model_wrapper=dict(
        type='mmkd.LLMFullyShardedDataParallel',
        wrap_layer_names=['Qwen2DecoderLayer', 'SiglipEncoderLayer'],
        mixed_precision=dict(param_dtype='bfloat16', reduce_dtype='float32', buffer_dtype='float32'),
        use_orig_params=True),   # frozen parameters next to trained ones
    state_dict_cfg='full')
env_cfg = dict(dist_cfg=dict(backend='nccl'))
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.0, betas=(0.9, 0.999)),
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
