# MGD (Qin et al., ECCV 2022) at the official Cityscapes 1/8 setting
# (exp.city/city8.resnet18_deeplabv3plus): DeepLabV3+ ResNet-18 student; wide teacher
# DeepLabV3+ on a wide ResNet-50-2 (bottleneck widths doubled, 2048-ch output as the
# official "wide_resnet34_2" network feeds its 2048-ch ASPP), deep teacher DeepLabV3+
# ResNet-101, both trained beforehand on the same 1/8 split (the paper trains them
# semi-supervised) and given by path. 800x800 crops, batch 16 (8 GPUs x 2 labelled
# + 2x2 unlabelled), SGD lr 0.04, poly 0.9, 137 official epochs = 22194 iterations.
# Losses as the official train.py: pixel CE x4 (weight 1), semantic-sensitive L1 with
# lambda_1 = 0.001 (sum reduction), content-aware MSE with lambda_2 = 100, OHEM CE
# (thresh 0.7, 50000 pixels per image) on the labels. Not trained here (no
# Cityscapes); this config parses and builds.
_base_ = ['mmseg::_base_/datasets/cityscapes.py', 'mmseg::_base_/default_runtime.py']

crop_size = (800, 800)
num_classes = 19
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=crop_size)
# DeepLabV3+ head shared by the three models (in/c1 channels set per model).
head = dict(
    type='DepthwiseSeparableASPPHead',
    in_index=3,
    dilations=(1, 12, 24, 36),
    c1_channels=48,
    dropout_ratio=0.1,
    num_classes=num_classes,
    norm_cfg=norm_cfg,
    align_corners=False,
    loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0))
resnet = dict(
    type='ResNetV1c',
    num_stages=4,
    out_indices=(0, 1, 2, 3),
    dilations=(1, 1, 2, 4),
    strides=(1, 2, 1, 1),
    norm_cfg=norm_cfg,
    norm_eval=False,
    style='pytorch',
    contract_dilation=True)
student = dict(
    _scope_='mmseg',
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    pretrained='open-mmlab://resnet18_v1c',
    backbone=dict(resnet, depth=18),
    decode_head=dict(head, in_channels=512, channels=128, c1_in_channels=64, c1_channels=12),
    auxiliary_head=None,  # the official student has none
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
wide_teacher = dict(
    _scope_='mmseg',
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(type='mmpretrain.ResNetV1c', depth=50, base_channels=128, expansion=2,
                  num_stages=4, out_indices=(0, 1, 2, 3), dilations=(1, 1, 2, 4),
                  strides=(1, 2, 1, 1), norm_cfg=norm_cfg, style='pytorch'),
    decode_head=dict(head, in_channels=2048, channels=512, c1_in_channels=256),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
deep_teacher = dict(
    _scope_='mmseg',
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(resnet, depth=101),
    decode_head=dict(head, in_channels=2048, channels=512, c1_in_channels=256),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
model = dict(
    _scope_='mmkd',
    type='MultiGranularityDistill',
    architecture=student,
    wide_teacher=wide_teacher,
    deep_teacher=deep_teacher,
    wide_teacher_ckpt='checkpoints/mgd_ssss/deeplabv3plus_wrn50-2_city-1of8.pth',
    deep_teacher_ckpt='checkpoints/mgd_ssss/deeplabv3plus_r101_city-1of8.pth',
    logits_source='decode_head.conv_seg',
    student_feat_source='decode_head.sep_bottleneck',
    teacher_feat_source='decode_head.sep_bottleneck',
    loss_pixel=dict(type='PixelConsistencyLoss', loss_weight=1.0, ignore_index=255),
    loss_semantic=dict(type='SemanticSensitiveLoss', loss_weight=0.001, reduction='sum'),
    loss_content=dict(type='ContentAwareLoss', loss_weight=100.0, pool_size=7),
    sup_loss=dict(type='OhemCrossEntropyLoss', thresh=0.7, min_kept=50000, ignore_index=255),
    labelled_consistency=True,
    cutmix=dict(prop_range=(0.25, 0.5), n_boxes=3, random_aspect_ratio=True, prop_by_area=True,
                within_bounds=True, invert=True))

# Data: the official 1/8 split lists can be given as labelled_list (a text file of
# image names, e.g. CPS' train_aug_labeled_1-8.txt); otherwise a seeded 1/8 subset.
labelled_list = None
labelled_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(2048, 1024), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
unlabelled_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResize', scale=(2048, 1024), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        _delete_=True,
        type='mmkd.SemiSupervisedSegDataset',
        dataset=dict(
            type='CityscapesDataset',
            data_root='data/cityscapes/',
            data_prefix=dict(img_path='leftImg8bit/train', seg_map_path='gtFine/train'),
            pipeline=labelled_pipeline),
        unlabelled_pipeline=unlabelled_pipeline,
        labelled_fraction=0.125,
        labelled_list=labelled_list,
        num_unlabelled=2,
        split_seed=0))

max_iters = 22194
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.04, momentum=0.9, weight_decay=1e-4),
    clip_grad=None)
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters,
                        by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=2000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2000))
log_processor = dict(by_epoch=False)
randomness = dict(seed=12345)
auto_scale_lr = dict(enable=False, base_batch_size=16)
