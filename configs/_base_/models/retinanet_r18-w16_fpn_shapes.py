# Student RetinaNet: ResNet-18 of width 16 (channels 16-128), FPN and head of width 32.
_base_ = ['./retinanet_r18_fpn_shapes.py']
model = dict(
    backbone=dict(base_channels=16, stem_channels=16),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=32),
    bbox_head=dict(in_channels=32, feat_channels=32))
