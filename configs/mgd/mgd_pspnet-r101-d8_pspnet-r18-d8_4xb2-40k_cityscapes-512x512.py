# Masked Generative Distillation on Cityscapes, the official recipe
# (yzd-v/MGD seg/configs/distillers/mgd/psp_r101_distill_psp_r18_40k_512x512_city.py):
# PSPNet R101-d8 teacher (mmseg's 512x1024 40k checkpoint) -> PSPNet R18-d8, MGD on the
# last backbone stage (512 -> 2048 ch, spatial mask lambda=0.75, alpha=2e-5) plus the
# official logit term, CWD on the decode-head logits (tau=4, weight 3); 512x512 crops,
# 40k iterations of SGD (lr 0.01, poly), no init_student. Needs Cityscapes.
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

# the official 512x512 crops (student and teacher see the same crop); the rest of
# mmseg's Cityscapes training pipeline is unchanged
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(2048, 1024), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
# the official MGD segmentation schedule: mmseg's schedule_40k (SGD lr 0.01, momentum
# 0.9, weight decay 5e-4, poly power 0.9 down to 1e-4), 40k iterations
train_cfg = dict(max_iters=40000, val_interval=4000)
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=40000, by_epoch=False)]
default_hooks = dict(checkpoint=dict(interval=4000))
