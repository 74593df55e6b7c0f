# MGD at the official PASCAL VOC 2012 (aug, 10582 images) 1/8 setting
# (exp.voc/voc8.resnet18_deeplabv3plus): models as in the Cityscapes config with 21
# classes; 512x512 crops; batch 16; SGD lr 0.005 per GPU scaled by the world size
# in the official code (0.04 on 8 GPUs); 34 epochs = 19652 iterations; plain CE on
# the labels (ignore 255) instead of OHEM; lambda_1 = 0.002, lambda_2 = 100.
# Not trained here (no VOC).
_base_ = ['./mgd-ssss_deeplabv3plus-wrn50-2-r101_deeplabv3plus-r18_8xb2-1of8-22k_cityscapes-800x800.py']

crop_size = (512, 512)
num_classes = 21
voc_preprocessor = dict(size=crop_size)
model = dict(
    architecture=dict(data_preprocessor=voc_preprocessor, decode_head=dict(num_classes=num_classes)),
    wide_teacher=dict(data_preprocessor=voc_preprocessor, decode_head=dict(num_classes=num_classes)),
    deep_teacher=dict(data_preprocessor=voc_preprocessor, decode_head=dict(num_classes=num_classes)),
    wide_teacher_ckpt='checkpoints/mgd_ssss/deeplabv3plus_wrn50-2_voc-1of8.pth',
    deep_teacher_ckpt='checkpoints/mgd_ssss/deeplabv3plus_r101_voc-1of8.pth',
    loss_semantic=dict(loss_weight=0.002),
    loss_content=dict(loss_weight=100.0),
    # plain cross-entropy with ignore 255, as nn.CrossEntropyLoss in the VOC code
    sup_loss=dict(_delete_=True, type='PixelConsistencyLoss', loss_weight=1.0, ignore_index=255))

data_root = 'data/VOCdevkit/VOC2012'
labelled_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Pad', size=crop_size),
    dict(type='PackSegInputs'),
]
unlabelled_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Pad', size=crop_size),
    dict(type='PackSegInputs'),
]
voc_train = dict(type='PascalVOCDataset', data_root=data_root,
                 data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
                 ann_file='ImageSets/Segmentation/train.txt', pipeline=labelled_pipeline)
voc_aug = dict(type='PascalVOCDataset', data_root=data_root,
               data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassAug'),
               ann_file='ImageSets/Segmentation/aug.txt', pipeline=labelled_pipeline)
train_dataloader = dict(
    dataset=dict(
        dataset=dict(_delete_=True, type='ConcatDataset', datasets=[voc_train, voc_aug]),
        unlabelled_pipeline=unlabelled_pipeline))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        _delete_=True,
        type='PascalVOCDataset',
        data_root=data_root,
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
        ann_file='ImageSets/Segmentation/val.txt',
        pipeline=test_pipeline))
test_dataloader = val_dataloader

max_iters = 19652
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters,
                        by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=2000)
