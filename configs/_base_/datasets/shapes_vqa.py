# Generated visual question answering about drawn shapes (mmkd.ShapesVQADataset): 32x32
# images with 1-3 circles/squares/triangles in red/green/blue/yellow, three questions
# per image ("how many circles ?", "what colour is the square ?", "is there a
# triangle ?"), one-word answers and a wrong answer for preference training. 2,000
# train / 200 val images (6,000 / 600 questions). Answers are generated greedily and
# scored by exact match (mmkd.VQAAccuracy).
default_scope = 'mmkd'
img_size = 32
patch_size = 8
# visual tokens per image: (32 / 8)^2 patches (CLIP's CLS token dropped)
num_image_tokens = (img_size // patch_size)**2
# one word-level tokenizer (34 tokens incl. <pad> <unk> <s> </s> <image>) for every model
tokenizer = dict(type='ChatWordTokenizer')

dataset_type = 'ShapesVQADataset'
pipeline = [dict(type='PackVQAInputs', tokenizer=tokenizer, num_image_tokens=num_image_tokens)]
train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    dataset=dict(type=dataset_type, split='train', num_images=2000, img_size=img_size,
                 pipeline=pipeline),
    sampler=dict(type='InfiniteSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=100,
    num_workers=0,
    dataset=dict(type=dataset_type, split='val', num_images=200, img_size=img_size,
                 pipeline=pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='VQAAccuracy')
test_dataloader = val_dataloader
test_evaluator = val_evaluator
