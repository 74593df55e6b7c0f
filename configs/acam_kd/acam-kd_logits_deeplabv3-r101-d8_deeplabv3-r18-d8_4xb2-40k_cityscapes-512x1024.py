# ACAM-KD on Cityscapes logits, the paper's DeepLabV3 R101 -> R18 setting (M=19, one
# selection unit per class), on the paper's schedule (40k iterations, lr 0.02). Needs
# Cityscapes under data/cityscapes.
_base_ = ['mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py']

teacher_ckpt = 'https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3/deeplabv3_r101-d8_512x1024_80k_cityscapes/deeplabv3_r101-d8_512x1024_80k_cityscapes_20200606_113503-9e428899.pth'  # noqa: E501
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='SingleTeacherDistill',
    architecture=dict(cfg_path='mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py', pretrained=True),
    teacher=dict(cfg_path='mmseg::deeplabv3/deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py', pretrained=False),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(logits=dict(type='ModuleOutputs', source='decode_head.conv_seg')),
        teacher_recorders=dict(logits=dict(type='ModuleOutputs', source='decode_head.conv_seg')),
        distill_losses=dict(loss_acam=dict(type='ACAMKDLoss', student_channels=19, teacher_channels=19, num_masks=19)),
        loss_forward_mappings=dict(loss_acam=dict(preds_S=dict(from_student=True, recorder='logits'),
                                   preds_T=dict(from_student=False, recorder='logits')))))
# the paper's segmentation schedule: SGD (momentum 0.9, weight decay 5e-4), initial lr
# 0.02, poly decay, 40k iterations (mmseg's base: lr 0.01, 80k)
optim_wrapper = dict(optimizer=dict(lr=0.02))
train_cfg = dict(max_iters=40000, val_interval=4000)
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=40000, by_epoch=False)]
default_hooks = dict(checkpoint=dict(interval=4000))
