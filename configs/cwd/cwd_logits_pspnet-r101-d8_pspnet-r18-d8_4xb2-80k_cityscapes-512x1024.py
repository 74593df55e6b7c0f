# CWD on Cityscapes logits, the paper's setting: PSPNet-R101 (mmseg zoo, 79.76 mIoU)
# -> PSPNet-R18, tau=4, loss weight 3 (Shu et al., ICCV 2021, Sec. 4). Needs
# Cityscapes under data/cityscapes.
_base_ = ['mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py']

teacher_ckpt = 'https://download.openmmlab.com/mmsegmentation/v0.5/pspnet/pspnet_r101-d8_512x1024_80k_cityscapes/pspnet_r101-d8_512x1024_80k_cityscapes_20200606_112211-e1e1100f.pth'  # noqa: E501
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='SingleTeacherDistill',
    architecture=dict(cfg_path='mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py',
                      pretrained=True),
    teacher=dict(cfg_path='mmseg::pspnet/pspnet_r101-d8_4xb2-80k_cityscapes-512x1024.py',
                 pretrained=False),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(logits=dict(type='ModuleOutputs', source='decode_head.conv_seg')),
        teacher_recorders=dict(logits=dict(type='ModuleOutputs', source='decode_head.conv_seg')),
        distill_losses=dict(loss_cwd=dict(type='ChannelWiseDivergence', tau=4.0, loss_weight=3.0)),
        loss_forward_mappings=dict(
            loss_cwd=dict(
                preds_S=dict(from_student=True, recorder='logits'),
                preds_T=dict(from_student=False, recorder='logits')))))
