# Cross-modal digits (mmkd.CrossModalDigitsDataset): scikit-learn's 1,797 real 8x8
# digits as modality 'img' (resized to 16x16, uint8 HxWx3) and a derived 1-D "audio"
# signal as modality 'audio' (64 samples: a tone whose frequency encodes the true
# label, in Gaussian noise, sigma=1.5). Same split as mmkd.DigitsDataset.
default_scope = 'mmpretrain'
img_size = 16
dataset_type = 'mmkd.CrossModalDigitsDataset'
modal_keys = ('img', 'audio')
train_pipeline = [
    dict(type='RandomCrop', crop_size=img_size, padding=2),  # acts on 'img' only
    dict(type='mmkd.PackMultiModalInputs', keys=modal_keys),
]
test_pipeline = [dict(type='mmkd.PackMultiModalInputs', keys=modal_keys)]
train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    dataset=dict(type=dataset_type, split='train', img_size=img_size, signal_length=64,
                 noise_std=1.5, pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=120,
    num_workers=0,
    dataset=dict(type=dataset_type, split='val', img_size=img_size, signal_length=64,
                 noise_std=1.5, pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
