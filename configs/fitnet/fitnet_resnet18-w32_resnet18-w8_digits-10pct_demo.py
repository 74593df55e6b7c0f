# FitNet (Romero et al., ICLR 2015) hint learning plus logit KD on the digits few-label
# setting: the student's last stage (64 ch) is mapped by a 1x1 conv regressor to the
# teacher's (256 ch) and mimics it with an L2 loss.
_base_ = ['../kd/kd_logits_resnet18-w32_resnet18-w8_digits-10pct_demo.py']

model = dict(
    distiller=dict(
        student_recorders=dict(stage4=dict(type='ModuleOutputs', source='backbone.layer4')),
        teacher_recorders=dict(stage4=dict(type='ModuleOutputs', source='backbone.layer4')),
        connectors=dict(hint=dict(type='ConvConnector', in_channels=64, out_channels=256,
                                  kernel_size=1)),
        distill_losses=dict(loss_fitnet=dict(type='L2Loss', loss_weight=1.0)),
        loss_forward_mappings=dict(
            loss_fitnet=dict(
                s_feature=dict(from_student=True, recorder='stage4', connector='hint'),
                t_feature=dict(from_student=False, recorder='stage4')))))
