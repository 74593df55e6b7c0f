# The soft-label option of the specific stage on the digits demo (see
# ../_base_/distillers/g2sd_soft_labels.py): the distillation token follows the
# teacher's softmax (KL, tau 1, weight 0.5) instead of its arg-max label.
_base_ = ['./g2sd-specific_vit-d8-w128_deit-d4-w64_p4_digits-10pct_demo.py',
          '../_base_/distillers/g2sd_soft_labels.py']
model = dict(
    distiller=dict(
        distill_losses={{_base_.g2sd_soft_losses}},
        loss_forward_mappings={{_base_.g2sd_soft_mappings}}))
