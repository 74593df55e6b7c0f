# Classifier on the tiny teacher ViT (depth 8, width 128, patch 4, 16x16), MAE fine-tuning recipe.
_base_ = ['./vit-d4-w64_p4_digits_cls.py']
model = dict(
    backbone=dict(arch=dict(embed_dims=128, num_layers=8, num_heads=4, feedforward_channels=512)),
    head=dict(in_channels=128))
