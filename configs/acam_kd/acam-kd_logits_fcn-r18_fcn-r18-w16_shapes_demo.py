# ACAM-KD on segmentation logits (the paper distils the predicted maps, with one
# selection unit per class: M = 5 classes here, 19 on Cityscapes), shapes demo.
_base_ = ['../cwd/cwd_logits_fcn-r18_fcn-r18-w16_shapes_demo.py']

model = dict(
    distiller=dict(
        distill_losses=dict(
            _delete_=True,
            loss_acam=dict(type='ACAMKDLoss', student_channels=5, teacher_channels=5,
                           num_masks=5, loss_weight=1.0)),
        loss_forward_mappings=dict(
            _delete_=True,
            loss_acam=dict(
                preds_S=dict(from_student=True, recorder='logits'),
                preds_T=dict(from_student=False, recorder='logits')))))
