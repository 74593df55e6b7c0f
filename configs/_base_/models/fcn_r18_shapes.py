# FCN ResNetV1c-18 (output stride 8) sized for the 128x128 shapes data (5 classes incl.
# background), BN instead of SyncBN so that it also runs on CPU, random init.
_base_ = ['mmseg::_base_/models/fcn_r50-d8.py']
norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(size=(128, 128))
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(depth=18, norm_cfg=norm_cfg),
    decode_head=dict(in_channels=512, channels=64, num_classes=5, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=256, channels=32, num_classes=5, norm_cfg=norm_cfg))
