# Decoupled KD (Zhao et al., CVPR 2022) on the digits 10%-label subset. DKD needs the
# ground-truth class of every sample it distils, so this run sees exactly the
# labelled images of the "student alone" baseline (unlabelled='drop'): the gain over
# that baseline is the teacher's dark knowledge on the same data. (With
# unlabelled='hide', DKD would be an average over ~3 labelled images per batch of 32
# and training diverges at this learning rate; logit KD is the right tool there.)
_base_ = ['../kd/kd_logits_resnet18-w32_resnet18-w8_digits-10pct_demo.py']

train_dataloader = dict(dataset=dict(unlabelled='drop'))

model = dict(
    distiller=dict(
        distill_losses=dict(
            _delete_=True,
            loss_dkd=dict(type='DKDLoss', tau=4.0, alpha=1.0, beta=8.0, loss_weight=1.0)),
        loss_forward_mappings=dict(
            _delete_=True,
            loss_dkd=dict(
                preds_S=dict(from_student=True, recorder='logits'),
                preds_T=dict(from_student=False, recorder='logits'),
                gt_labels=dict(from_data='gt_label')))))
# The DKD paper warms the loss up linearly over its first 20 of 240 epochs.
custom_hooks = [dict(type='mmkd.DistillLossWeightHook', warmup=50, start_factor=0.0)]
