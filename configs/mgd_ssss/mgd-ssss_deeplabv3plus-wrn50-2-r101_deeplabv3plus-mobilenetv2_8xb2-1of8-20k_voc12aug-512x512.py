# MGD, PASCAL VOC 2012 aug 1/8, DeepLabV3+ MobileNetV2 student
# (exp.voc/voc8.mobilev2_deeplabv3plus): lambda_1 = 0.0005, lambda_2 = 50; the rest as
# the VOC ResNet-18 config. Not trained here.
_base_ = ['./mgd-ssss_deeplabv3plus-wrn50-2-r101_deeplabv3plus-r18_8xb2-1of8-20k_voc12aug-512x512.py']
model = dict(
    architecture=dict(
        pretrained='mmcls://mobilenet_v2',
        backbone=dict(
            _delete_=True,
            type='MobileNetV2',
            widen_factor=1.,
            strides=(1, 2, 2, 1, 1, 1, 1),
            dilations=(1, 1, 1, 2, 2, 4, 4),
            out_indices=(1, 2, 4, 6),
            norm_cfg={{_base_.norm_cfg}}),
        decode_head=dict(in_channels=320, channels=512, c1_in_channels=24, c1_channels=48)),
    loss_semantic=dict(loss_weight=0.0005),
    loss_content=dict(loss_weight=50.0))
