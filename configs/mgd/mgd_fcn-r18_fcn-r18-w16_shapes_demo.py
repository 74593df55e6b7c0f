# Masked Generative Distillation for segmentation (the official Cityscapes setting):
# MGD on the last backbone stage (student 128 ch -> teacher 512 ch; spatial mask,
# lambda=0.75, alpha=2e-5) plus channel-wise distillation of the logits (tau=4,
# weight 3), which the official segmentation results include. Shapes demo.
_base_ = ['../cwd/cwd_logits_fcn-r18_fcn-r18-w16_shapes_demo.py']

model = dict(
    distiller=dict(
        student_recorders=dict(stage4=dict(type='ModuleOutputs', source='backbone.layer4')),
        teacher_recorders=dict(stage4=dict(type='ModuleOutputs', source='backbone.layer4')),
        distill_losses=dict(
            loss_mgd=dict(type='MGDLoss', student_channels=128, teacher_channels=512,
                          alpha_mgd=2e-5, lambda_mgd=0.75, mask_type='spatial')),
        loss_forward_mappings=dict(
            loss_mgd=dict(
                preds_S=dict(from_student=True, recorder='stage4'),
                preds_T=dict(from_student=False, recorder='stage4')))))
