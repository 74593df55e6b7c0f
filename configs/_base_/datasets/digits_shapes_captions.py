# Generated image-caption pairs (mmkd.DigitsShapesCaptions): scikit-learn's real
# handwritten digits captioned "a handwritten digit seven" (fixed 80/20 split) and
# drawn coloured shapes captioned "a red circle and a blue star" (1,200 train / 240
# val images), 32x32 RGB. Zero-shot classification is evaluated on the digits
# ("a handwritten digit {}"), caption retrieval on the shapes.
default_scope = 'mmkd'
img_size = 32
# every word of the captions and prompts (mmkd.datasets.image_captions.CAPTION_WORDS)
caption_words = [
    'a', 'an', 'and', 'handwritten', 'digit', 'photo', 'of', 'the', 'zero', 'one', 'two',
    'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'circle', 'rectangle',
    'triangle', 'star', 'red', 'green', 'blue', 'yellow', 'purple'
]
context_length = 12
vocab_size = len(caption_words) + 4  # + padding, unknown, start, end (WordTokenizer)
tokenizer = dict(type='WordTokenizer', vocab=caption_words, context_length=context_length)
zero_shot = dict(
    classes=['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'],
    templates=['a handwritten digit {}'])
# mean/std of the training images (0..255)
data_preprocessor = dict(type='ImageTextDataPreprocessor', mean=[100.0, 98.0, 98.0],
                         std=[71.0, 69.0, 70.0])

dataset_type = 'DigitsShapesCaptions'
train_pipeline = [
    dict(type='mmpretrain.RandomCrop', crop_size=img_size, padding=2),
    dict(type='TokenizeCaption', tokenizer=tokenizer),
    dict(type='PackImageText'),
]
test_pipeline = [
    dict(type='TokenizeCaption', tokenizer=tokenizer),
    dict(type='PackImageText'),
]
train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    # equal batches on every rank: the contrastive/affinity columns are gathered
    drop_last=True,
    dataset=dict(type=dataset_type, split='train', img_size=img_size, pipeline=train_pipeline),
    sampler=dict(type='InfiniteSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=128,
    num_workers=0,
    dataset=dict(type=dataset_type, split='val', img_size=img_size, pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = [
    dict(type='ZeroShotAccuracy', topk=(1, ), sources=('digits', )),
    dict(type='ImageTextRetrieval', topk=(1, 5), match_by='caption', sources=('shapes', )),
]
test_dataloader = val_dataloader
test_evaluator = val_evaluator
