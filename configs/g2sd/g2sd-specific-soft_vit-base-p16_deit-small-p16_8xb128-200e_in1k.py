# The soft-label option of the G2SD specific stage on ImageNet-1k: the distillation
# token follows the teacher's softmax (KL, tau 1, weight 0.5; DeiT's soft distillation)
# instead of its arg-max label. Everything else as the hard-label config. The paper's
# ImageNet results use the hard labels; this variant is not measured at this scale.
_base_ = ['./g2sd-specific_vit-base-p16_deit-small-p16_8xb128-200e_in1k.py']
model = dict(
    distiller=dict(
        distill_losses=dict(
            _delete_=True, loss_soft=dict(type='KLDivergence', tau=1.0, loss_weight=0.5)),
        loss_forward_mappings=dict(
            _delete_=True,
            loss_soft=dict(
                preds_S=dict(from_student=True, recorder='dist_logits'),
                preds_T=dict(from_student=False, recorder='logits')))))
