# Tiny LLaVA models for the shapes VQA demos (mmkd.LlavaModel: transformers'
# LlavaForConditionalGeneration built from configs, random init, no download).
# Teacher: CLIP vision width 128 x 4 layers, Qwen2 LLM width 128 x 4 layers.
# Student: CLIP vision width 64 x 2 layers, Qwen2 LLM width 64 x 2 layers.
# Both: 32x32 images in 8x8 patches -> 16 visual tokens, the shared 34-token vocabulary.
_tokenizer = dict(type='ChatWordTokenizer')
# pixels to [-1, 1]; <pad> = 0
_preprocessor = dict(type='LlavaDataPreprocessor', mean=[127.5] * 3, std=[127.5] * 3, pad_token_id=0)
teacher_llava = dict(
    type='LlavaModel',
    _scope_='mmkd',
    vision_config=dict(model_type='clip_vision_model', image_size=32, patch_size=8,
                       hidden_size=128, intermediate_size=256, num_hidden_layers=4,
                       num_attention_heads=4),
    text_config=dict(model_type='qwen2', hidden_size=128, intermediate_size=256,
                     num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                     max_position_embeddings=64, tie_word_embeddings=True),
    vision_feature_layer=-1,
    tokenizer=_tokenizer,
    max_new_tokens=3,
    data_preprocessor=_preprocessor)
student_llava = dict(
    type='LlavaModel',
    _scope_='mmkd',
    vision_config=dict(model_type='clip_vision_model', image_size=32, patch_size=8,
                       hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=2),
    text_config=dict(model_type='qwen2', hidden_size=64, intermediate_size=128,
                     num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                     max_position_embeddings=64, tie_word_embeddings=True),
    vision_feature_layer=-1,
    tokenizer=_tokenizer,
    max_new_tokens=3,
    data_preprocessor=_preprocessor)
