# The tiny MAE teacher of the DMAE/G2SD digits demos: plain mmpretrain MAE pre-training
# (no labels) of a ViT depth 8, width 128, patch 4, on the 1,438 training digits (16x16).
_base_ = [
    '../_base_/datasets/digits_mae.py', '../_base_/schedules/digits_mae.py',
    '../_base_/models/mae_vit-d8-w128_p4_digits.py'
]
