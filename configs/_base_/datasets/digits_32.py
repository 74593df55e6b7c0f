# Digits classification at 32x32 for the tiny-ViT fine-tuning demos (patch 4 -> 8x8 grid).
_base_ = ['./digits.py']
img_size = 32
train_pipeline = [
    dict(type='RandomCrop', crop_size=img_size, padding=2),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(img_size=img_size, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(img_size=img_size))
test_dataloader = val_dataloader
