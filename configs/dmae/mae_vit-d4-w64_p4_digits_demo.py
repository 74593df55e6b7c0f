# Baseline: plain MAE pre-training of the tiny student ViT (depth 4, width 64) on the same
# images, steps, schedule and seed as the DMAE/G2SD distillation runs.
_base_ = [
    '../_base_/datasets/digits_mae.py', '../_base_/schedules/digits_mae.py',
    '../_base_/models/mae_vit-d4-w64_p4_digits.py'
]
