# The soft-label option of the G2SD specific stage on ImageNet-1k (see
# ../_base_/distillers/g2sd_soft_labels.py); everything else as the hard-label config.
# The paper's ImageNet results use the hard labels; this variant is not measured here.
_base_ = ['./g2sd-specific_vit-base-p16_deit-small-p16_8xb128-200e_in1k.py',
          '../_base_/distillers/g2sd_soft_labels.py']
model = dict(
    distiller=dict(
        distill_losses={{_base_.g2sd_soft_losses}},
        loss_forward_mappings={{_base_.g2sd_soft_mappings}}))
