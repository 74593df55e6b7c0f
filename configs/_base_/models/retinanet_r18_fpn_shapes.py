# RetinaNet ResNet-18 FPN sized for the 128x128 shapes data (4 classes), random init.
_base_ = ['mmdet::_base_/models/retinanet_r50_fpn.py']
model = dict(
    backbone=dict(depth=18, frozen_stages=-1, norm_eval=False, init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=64),
    bbox_head=dict(
        num_classes=4, in_channels=64, feat_channels=64, stacked_convs=2,
        # objects are 12-60 px: anchors of 16-25 px on P3 (32 px by default) match them
        anchor_generator=dict(octave_base_scale=2)))
