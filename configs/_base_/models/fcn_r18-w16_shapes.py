# Student FCN: ResNetV1c-18 of width 16 (channels 16-128), light heads.
_base_ = ['./fcn_r18_shapes.py']
model = dict(
    backbone=dict(base_channels=16, stem_channels=16),
    decode_head=dict(in_channels=128, channels=32),
    auxiliary_head=dict(in_channels=64, channels=16))
