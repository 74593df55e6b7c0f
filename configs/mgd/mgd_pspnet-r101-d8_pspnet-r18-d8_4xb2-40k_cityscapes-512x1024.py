# Masked Generative Distillation on Cityscapes, the official setting: MGD on the last
# backbone stage (512 -> 2048 ch, lambda=0.75, alpha=2e-5) plus CWD on the logits
# (tau=4, weight 3), PSPNet R101 -> PSPNet R18, 40k iterations. Needs Cityscapes.
_base_ = ['mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py']

teacher_ckpt = 'https://download.openmmlab.com/mmsegmentation/v0.5/pspnet/pspnet_r101-d8_512x1024_40k_cityscapes/pspnet_r101-d8_512x1024_40k_cityscapes_20200604_232751-467e7cf4.pth'  # noqa: E501
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='SingleTeacherDistill',
    architecture=dict(cfg_path='mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py', pretrained=True),
    teacher=dict(cfg_path='mmseg::pspnet/pspnet_r101-d8_4xb2-40k_cityscapes-512x1024.py', pretrained=False),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(logits=dict(type='ModuleOutputs', source='decode_head.conv_seg'),
                               stage4=dict(type='ModuleOutputs', source='backbone.layer4')),
        teacher_recorders=dict(logits=dict(type='ModuleOutputs', source='decode_head.conv_seg'),
                               stage4=dict(type='ModuleOutputs', source='backbone.layer4')),
        distill_losses=dict(
            loss_mgd=dict(type='MGDLoss', student_channels=512, teacher_channels=2048,
                          alpha_mgd=2e-5, lambda_mgd=0.75, mask_type='spatial'),
            loss_cwd=dict(type='ChannelWiseDivergence', tau=4.0, loss_weight=3.0)),
        loss_forward_mappings=dict(
            loss_mgd=dict(preds_S=dict(from_student=True, recorder='stage4'),
                          preds_T=dict(from_student=False, recorder='stage4')),
            loss_cwd=dict(preds_S=dict(from_student=True, recorder='logits'),
                          preds_T=dict(from_student=False, recorder='logits')))))
# the official MGD segmentation schedule: 40k iterations
train_cfg = dict(max_iters=40000, val_interval=4000)
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=40000, by_epoch=False)]
