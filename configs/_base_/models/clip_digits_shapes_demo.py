# open_clip CLIP model configs (open_clip.model.CLIP arguments) of the TinyCLIP demos.
# 32x32 images in 8x8 patches (16 tokens + class token), heads of 32 channels.
# Teacher: image ViT width 64, 4 layers, 2 heads; text width 64, 4 layers, 2 heads.
teacher_clip = dict(
    embed_dim=64,
    vision_cfg=dict(image_size=32, patch_size=8, width=64, layers=4, head_width=32),
    text_cfg=dict(context_length=12, vocab_size=31, width=64, heads=2, layers=4))
# Student, TinyCLIP's manual recipe (image tower narrower, text tower shallower):
# image ViT width 32 (1 head), 4 layers; text width 64, 2 layers (37.5% of the
# teacher's transformer weights).
student_clip = dict(
    embed_dim=64,
    vision_cfg=dict(image_size=32, patch_size=8, width=32, layers=4, head_width=32),
    text_cfg=dict(context_length=12, vocab_size=31, width=64, heads=2, layers=2))
