# scikit-learn's 1,797 real 8x8 handwritten digits (mmkd.DigitsDataset), for mmpretrain.
default_scope = 'mmpretrain'
img_size = 16
dataset_type = 'mmkd.DigitsDataset'
train_pipeline = [
    dict(type='RandomCrop', crop_size=img_size, padding=2),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    dataset=dict(type=dataset_type, split='train', img_size=img_size, pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=120,
    num_workers=0,
    dataset=dict(type=dataset_type, split='val', img_size=img_size, pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
