# Tiny DeepLabV3+ (ResNetV1c-18 of width 16, output stride 8) for the 128x128 shapes
# data (5 classes incl. background): the CNN student of the HFD/BSD demo. BN instead
# of SyncBN (CPU), random init, ASPP dilations shrunk to the 16x16 top feature map.
_base_ = ['mmseg::_base_/models/deeplabv3plus_r50-d8.py']
norm_cfg = dict(type='BN', requires_grad=True)
# Background is ~90% of the pixels: unweighted CE from random weights predicts only
# background for the first ~1000 iterations (mIoU 17.96 = background IoU / 5). A lower
# background weight makes the short demo schedule learn the shapes.
loss_decode = dict(type='CrossEntropyLoss', use_sigmoid=False,
                   class_weight=[0.2, 1.0, 1.0, 1.0, 1.0])
data_preprocessor = dict(size=(128, 128))
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(depth=18, base_channels=16, stem_channels=16, norm_cfg=norm_cfg),
    decode_head=dict(in_channels=128, channels=32, c1_in_channels=16, c1_channels=8,
                     dilations=(1, 3, 6, 9), num_classes=5, norm_cfg=norm_cfg,
                     loss_decode=loss_decode),
    auxiliary_head=dict(in_channels=64, channels=16, num_classes=5, norm_cfg=norm_cfg,
                        loss_decode=dict(loss_decode, loss_weight=0.4)))
