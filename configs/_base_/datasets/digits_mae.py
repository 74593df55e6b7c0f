# Digits (mmkd.DigitsDataset) for masked-image pre-training / distillation of tiny ViTs:
# all 1,438 training images, labels unused, 16x16 (patch 4 -> a 4x4 patch grid).
# Written for default_scope='mmpretrain'.
default_scope = 'mmpretrain'
img_size = 16
dataset_type = 'mmkd.DigitsDataset'
data_preprocessor = dict(
    type='SelfSupDataPreprocessor',
    # mean/std of the digits train images scaled to 0..255 (as in digits.py)
    mean=[78.0, 78.0, 78.0],
    std=[105.0, 105.0, 105.0],
    to_rgb=False)
train_pipeline = [
    dict(type='RandomCrop', crop_size=img_size, padding=2),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    dataset=dict(type=dataset_type, split='train', img_size=img_size, pipeline=train_pipeline),
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
)
