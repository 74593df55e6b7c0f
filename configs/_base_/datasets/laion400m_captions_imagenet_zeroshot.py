# LAION-400M image-caption pairs for training (an img2dataset export listed in a TSV
# file, open_clip's csv layout: columns `filepath` and `title`), ImageNet-1k val for
# zero-shot evaluation (mmpretrain's layout, data/imagenet). Images 224x224, CLIP's
# normalisation and BPE tokenizer (77 tokens). Put the data under these roots.
default_scope = 'mmkd'
img_size = 224
tokenizer = dict(type='OpenCLIPTokenizer', context_length=77)
zero_shot = dict(classes='imagenet', templates='openai')  # open_clip's 1000 names, 80 prompts
data_preprocessor = dict(type='ImageTextDataPreprocessor', bgr_to_rgb=True)  # CLIP mean/std

train_pipeline = [
    dict(type='LoadImageFromFile'),
    # open_clip's training crop: RandomResizedCrop(scale=(0.9, 1.0)), bicubic
    dict(type='mmpretrain.RandomResizedCrop', scale=img_size, crop_ratio_range=(0.9, 1.0),
         interpolation='bicubic', backend='pillow'),
    dict(type='TokenizeCaption', tokenizer=tokenizer),
    dict(type='PackImageText'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmpretrain.ResizeEdge', scale=img_size, edge='short', interpolation='bicubic',
         backend='pillow'),
    dict(type='mmpretrain.CenterCrop', crop_size=img_size),
    dict(type='PackImageText'),
]
train_dataloader = dict(
    batch_size=1024,
    num_workers=8,
    persistent_workers=True,
    drop_last=True,  # equal batches on every rank (gathered affinity columns)
    dataset=dict(type='CsvCaptionDataset', data_root='data/laion400m', ann_file='train.tsv',
                 data_prefix=dict(img_path='images'), img_key='filepath', caption_key='title',
                 pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=256,
    num_workers=8,
    dataset=dict(type='mmpretrain.ImageNet', data_root='data/imagenet', split='val',
                 pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='ZeroShotAccuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
