# The soft-label option of G2SD's specific stage (classification), shared by the demo
# and the ImageNet configs: the distillation token follows the teacher's softmax (KL,
# tau 1, weight 0.5; DeiT's soft distillation) instead of its arg-max label. Used as
# `distill_losses={{_base_.g2sd_soft_losses}}` (each replaces the hard-label entry).
g2sd_soft_losses = dict(_delete_=True, loss_soft=dict(type='KLDivergence', tau=1.0, loss_weight=0.5))
g2sd_soft_mappings = dict(
    _delete_=True,
    loss_soft=dict(
        preds_S=dict(from_student=True, recorder='dist_logits'),
        preds_T=dict(from_student=False, recorder='logits')))
