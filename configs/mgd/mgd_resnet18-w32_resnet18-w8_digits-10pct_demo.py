# Masked Generative Distillation for classification (the official ImageNet setting:
# channel mask, lambda=0.15, alpha=7e-5 on the last backbone stage) on the digits
# 10%-label demo, next to the logit KD of configs/kd (MGD is a feature loss; the
# few-label setting needs the teacher's labels on unlabelled images too).
_base_ = ['../kd/kd_logits_resnet18-w32_resnet18-w8_digits-10pct_demo.py']

model = dict(
    distiller=dict(
        student_recorders=dict(stage4=dict(type='ModuleOutputs', source='backbone.layer4')),
        teacher_recorders=dict(stage4=dict(type='ModuleOutputs', source='backbone.layer4')),
        distill_losses=dict(
            loss_mgd=dict(type='MGDLoss', student_channels=64, teacher_channels=256,
                          alpha_mgd=7e-5, lambda_mgd=0.15, mask_type='channel')),
        loss_forward_mappings=dict(
            loss_mgd=dict(
                preds_S=dict(from_student=True, recorder='stage4'),
                preds_T=dict(from_student=False, recorder='stage4')))))
