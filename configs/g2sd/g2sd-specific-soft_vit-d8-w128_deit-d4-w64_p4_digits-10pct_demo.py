# The soft-label option of the specific stage: the distillation token follows the
# teacher's temperature-softened distribution (KL, tau 1, weight 0.5; DeiT's soft
# distillation) instead of its arg-max label.
_base_ = ['./g2sd-specific_vit-d8-w128_deit-d4-w64_p4_digits-10pct_demo.py']
model = dict(
    distiller=dict(
        distill_losses=dict(
            _delete_=True, loss_soft=dict(type='KLDivergence', tau=1.0, loss_weight=0.5)),
        loss_forward_mappings=dict(
            _delete_=True,
            loss_soft=dict(
                preds_S=dict(from_student=True, recorder='dist_logits'),
                preds_T=dict(from_student=False, recorder='logits')))))
