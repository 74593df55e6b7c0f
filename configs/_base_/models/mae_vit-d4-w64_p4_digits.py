# Tiny MAE student for the digits demos: ViT depth 4, width 64, 4 heads, patch 4 on
# 16x16 images; decoder depth 2, width 32. About 1/8 of the teacher's encoder FLOPs.
_base_ = ['./mae_vit-d8-w128_p4_digits.py']
model = dict(
    backbone=dict(arch=dict(embed_dims=64, num_layers=4, num_heads=4, feedforward_channels=256)),
    neck=dict(embed_dim=64, decoder_embed_dim=32, decoder_depth=2, decoder_num_heads=4))
