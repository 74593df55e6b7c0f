# The embedded "shapes" data set (mmkd.datasets.shapes) for mmdet detection:
# COCO files read by mmdet's own CocoDataset and scored by CocoMetric.
# Written for default_scope='mmdet' (set here, like mmkd's other dataset bases).
# Create the files first (deterministic, a few seconds):
#   python tools/dataset_converters/generate_shapes.py --out data/shapes
# The classes and palette below equal mmkd.datasets.shapes.SHAPES_CLASSES/_PALETTE
# (a test checks it). Instance segmentation: add with_mask=True to LoadAnnotations
# and metric=['bbox', 'segm']; masks are COCO RLE, decoded with poly2mask=True.
default_scope = 'mmdet'
dataset_type = 'CocoDataset'
data_root = 'data/shapes/'
img_scale = (128, 128)
metainfo = dict(
    classes=('circle', 'rectangle', 'triangle', 'star'),
    palette=[(220, 20, 60), (0, 130, 200), (60, 180, 75), (255, 200, 0)])
backend_args = None

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    # LoadAnnotations after Resize: the metric compares with unresized ground truth
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='images/train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=8),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='images/val/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/instances_val.json',
    metric='bbox',
    format_only=False,
    backend_args=backend_args)
test_evaluator = val_evaluator
