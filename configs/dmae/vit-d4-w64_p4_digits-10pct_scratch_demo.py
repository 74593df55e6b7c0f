# Fine-tuning baseline: the tiny student ViT (depth 4, width 64) trained from random
# initialisation on the 10% labelled digits only (class-stratified, fixed; the other
# training images are dropped). Every *_ft-*_demo.py config runs exactly this recipe
# (steps, schedule, seed) from a different pre-trained encoder.
_base_ = [
    '../_base_/datasets/digits.py', '../_base_/schedules/digits_vit_finetune.py',
    '../_base_/models/vit-d4-w64_p4_digits_cls.py'
]
labelled_fraction = 0.1
train_dataloader = dict(
    dataset=dict(labelled_fraction=labelled_fraction, unlabelled='drop'),
    sampler=dict(type='InfiniteSampler', shuffle=True))
