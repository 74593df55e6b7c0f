# The embedded "shapes" data set (mmkd.datasets.shapes) for mmseg semantic
# segmentation: image/mask folders read by mmseg's own BaseSegDataset and scored
# by IoUMetric. Written for default_scope='mmseg' (set here, like mmkd's other
# dataset bases). Create the files first (deterministic, a few seconds):
#   python tools/dataset_converters/generate_shapes.py --out data/shapes
# Mask values: 0 background, 1..4 the shapes (no ignore pixels, so
# reduce_zero_label=False). The classes and palette below equal
# mmkd.datasets.shapes.SHAPES_SEG_CLASSES/_PALETTE (a test checks it).
# Every training crop is crop_size; the model's SegDataPreProcessor should use
# size=crop_size.
default_scope = 'mmseg'
dataset_type = 'BaseSegDataset'
data_root = 'data/shapes/'
crop_size = (128, 128)
metainfo = dict(
    classes=('background', 'circle', 'rectangle', 'triangle', 'star'),
    palette=[(0, 0, 0), (220, 20, 60), (0, 130, 200), (60, 180, 75), (255, 200, 0)])
backend_args = None

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations'),
    # ratios >= 1 so that every crop is a full crop_size (no padding needed)
    dict(type='RandomResize', scale=crop_size, ratio_range=(1.0, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=crop_size, keep_ratio=True),
    # LoadAnnotations after Resize: the metric compares with unresized ground truth
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
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
        img_suffix='.png',
        seg_map_suffix='.png',
        reduce_zero_label=False,
        data_prefix=dict(img_path='images/train', seg_map_path='seg_masks/train'),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        img_suffix='.png',
        seg_map_suffix='.png',
        reduce_zero_label=False,
        data_prefix=dict(img_path='images/val', seg_map_path='seg_masks/val'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
