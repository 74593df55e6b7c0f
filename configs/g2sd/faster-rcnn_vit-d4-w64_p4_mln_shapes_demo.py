# The G2SD dense-prediction *student alone* (shapes detection demo): a Faster R-CNN whose
# backbone is the tiny ViT of the G2SD generic stage (depth 4, width 64, patch 4; mmpretrain
# VisionTransformer, feature map of the last block, stride 4) with a ViTDet-like simple
# feature pyramid built from that single map (mmseg's MultiLevelNeck: 1x1 conv, resize by
# 1, 1/2, 1/4, 1/8, 1/16, 3x3 conv -> P2..P6, 64 channels). No distillation.
# Backbone initialised from the G2SD generic-stage student, converted for dense backbones:
#   python tools/model_converters/mae_distill_to_vit.py \
#       work_dirs/mae_distill_demo/student_g2sd_generic/iter_800.pth \
#       work_dirs/g2sd_dense_demo/vit-d4-w64_p4_g2sd-generic_dense.pth --no-final-norm
# (the 4x4 position-embedding grid of the 16x16 digits is interpolated to 16x16 on load).
# The images are resized from 128 to 64 px (16x16 tokens): at 128 px (1024 tokens) a step
# took 4-15x longer on one CPU thread, too slow for a few-minute demo.
_base_ = [
    '../_base_/datasets/shapes_detection.py', '../_base_/default_runtime.py',
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py'
]
img_scale = (64, 64)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline, filter_cfg=dict(min_size=4)))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
pretrained = 'work_dirs/g2sd_dense_demo/vit-d4-w64_p4_g2sd-generic_dense.pth'
embed_dims = 64
num_layers = 4
neck_channels = 64
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.VisionTransformer',
        arch=dict(embed_dims=embed_dims, num_layers=num_layers, num_heads=4,
                  feedforward_channels=4 * embed_dims),
        img_size=64,
        patch_size=4,
        out_type='featmap',
        out_indices=(num_layers - 1, ),
        final_norm=False,
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(
        _delete_=True,
        type='mmseg.MultiLevelNeck',
        in_channels=[embed_dims],
        out_channels=neck_channels,
        scales=[1, 0.5, 0.25, 0.125, 0.0625]),
    rpn_head=dict(
        in_channels=neck_channels, feat_channels=neck_channels,
        # objects are 6-30 px at 64 px: anchors of 8-128 px (32-512 by default)
        anchor_generator=dict(scales=[2])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=neck_channels),
        bbox_head=dict(in_channels=neck_channels, fc_out_channels=256, num_classes=4)),
    # fewer proposals and RoIs than COCO's defaults: at most 8 objects per image
    train_cfg=dict(rpn_proposal=dict(nms_pre=1000, max_per_img=300),
                   rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=100)))

# Schedule: AdamW (random heads), 6 epochs of 75 steps, lr 3e-4 with G2SD's layer-wise lr
# decay 0.7 over the ViT blocks (lr 1e-3 without decay diverged here: gradient norms of
# 200-2000 in epoch 2 and 0.0 bbox mAP after 6 epochs).
max_epochs = 6
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=3e-4, weight_decay=0.05),
    constructor='mmkd.DistillLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.7, norm_decay_mult=0.0, bias_decay_mult=0.0),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', by_epoch=True, milestones=[4, 5], gamma=0.1),
]
auto_scale_lr = dict(enable=False, base_batch_size=4)
default_hooks = dict(logger=dict(interval=25))
