# The G2SD dense-prediction *student alone* (shapes segmentation demo): UperNet on the tiny
# ViT of the G2SD generic stage (depth 4, width 64, patch 4; mmpretrain VisionTransformer,
# the feature maps of all 4 blocks) through mmseg's MultiLevelNeck (1x1 conv, resize by
# 1, 1/2, 1/4, 1/8, 3x3 conv: strides 4, 8, 16, 32, as in mmseg's ViT-UperNet, whose
# 16-px patches are resized by 4, 2, 1, 1/2). No distillation. Backbone initialised
# from the G2SD generic-stage student (see faster-rcnn_vit-d4-w64_p4_mln_shapes_demo.py
# for the conversion command). Images resized from 128 to 64 px (16x16 tokens) so that a
# run takes minutes on one CPU thread.
_base_ = [
    '../_base_/datasets/shapes_segmentation.py', '../_base_/default_runtime.py',
    '../_base_/schedules/shapes_seg.py'
]
pretrained = 'work_dirs/g2sd_dense_demo/vit-d4-w64_p4_g2sd-generic_dense.pth'
crop_size = (64, 64)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=crop_size, ratio_range=(1.0, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline),
                        sampler=dict(type='InfiniteSampler', shuffle=True))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

embed_dims = 64
num_layers = 4
channels = 64
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(
        type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0, seg_pad_val=255,
        size=crop_size),
    backbone=dict(
        type='mmpretrain.VisionTransformer',
        arch=dict(embed_dims=embed_dims, num_layers=num_layers, num_heads=4,
                  feedforward_channels=4 * embed_dims),
        img_size=64,
        patch_size=4,
        out_type='featmap',
        out_indices=(0, 1, 2, 3),
        final_norm=False,
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(type='MultiLevelNeck', in_channels=[embed_dims] * 4, out_channels=channels,
              scales=[1, 0.5, 0.25, 0.125]),
    decode_head=dict(
        type='UPerHead', in_channels=[channels] * 4, in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6), channels=channels, dropout_ratio=0.1, num_classes=5,
        norm_cfg=norm_cfg, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead', in_channels=channels, in_index=2, channels=32, num_convs=1,
        concat_input=False, dropout_ratio=0.1, num_classes=5, norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

max_iters = 400
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters,
                        by_epoch=False)]
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=max_iters),
                     logger=dict(interval=50))
log_processor = dict(by_epoch=False)
