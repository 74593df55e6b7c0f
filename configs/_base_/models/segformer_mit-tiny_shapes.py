# Tiny SegFormer (MixVisionTransformer with 16-128 channels, one block per stage) for
# the 128x128 shapes data: the ViT student of the HFD/BSD demo. BN in the head (CPU),
# random init, no stochastic depth.
_base_ = ['mmseg::_base_/models/segformer_mit-b0.py']
norm_cfg = dict(type='BN', requires_grad=True)
# Background is ~90% of the pixels: unweighted CE from random weights predicts only
# background for the first ~1000 iterations (mIoU 17.96 = background IoU / 5). A lower
# background weight makes the short demo schedule learn the shapes.
loss_decode = dict(type='CrossEntropyLoss', use_sigmoid=False,
                   class_weight=[0.2, 1.0, 1.0, 1.0, 1.0])
data_preprocessor = dict(size=(128, 128))
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(embed_dims=16, num_layers=[1, 1, 1, 1], num_heads=[1, 2, 4, 8],
                  drop_path_rate=0.0),
    decode_head=dict(in_channels=[16, 32, 64, 128], channels=64, num_classes=5,
                     norm_cfg=norm_cfg, loss_decode=loss_decode))
