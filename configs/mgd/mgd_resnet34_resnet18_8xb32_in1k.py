# Masked Generative Distillation on ImageNet, the official classification setting:
# channel mask on the last backbone stage (512 -> 512 ch), lambda=0.15, alpha=7e-5,
# ResNet-34 -> ResNet-18. Needs ImageNet under data/imagenet.
_base_ = ['mmpretrain::resnet/resnet18_8xb32_in1k.py']

teacher_ckpt = 'https://download.openmmlab.com/mmclassification/v0/resnet/resnet34_8xb32_in1k_20210831-f257d4e6.pth'  # noqa: E501
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='SingleTeacherDistill',
    architecture=dict(cfg_path='mmpretrain::resnet/resnet18_8xb32_in1k.py', pretrained=False),
    teacher=dict(cfg_path='mmpretrain::resnet/resnet34_8xb32_in1k.py', pretrained=False),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(stage4=dict(type='ModuleOutputs', source='backbone.layer4')),
        teacher_recorders=dict(stage4=dict(type='ModuleOutputs', source='backbone.layer4')),
        distill_losses=dict(
            loss_mgd=dict(type='MGDLoss', student_channels=512, teacher_channels=512,
                          alpha_mgd=7e-5, lambda_mgd=0.15, mask_type='channel')),
        loss_forward_mappings=dict(
            loss_mgd=dict(
                preds_S=dict(from_student=True, recorder='stage4'),
                preds_T=dict(from_student=False, recorder='stage4')))))
