# The fine-tuned teacher of G2SD's specific stage: the MAE-pre-trained tiny teacher ViT
# (depth 8, width 128) fine-tuned on the 10% labelled digits, same recipe as the students.
_base_ = [
    '../_base_/datasets/digits.py', '../_base_/schedules/digits_vit_finetune.py',
    '../_base_/models/vit-d8-w128_p4_digits_cls.py'
]
labelled_fraction = 0.1
pretrained = 'work_dirs/mae_distill_demo/vit-d8-w128_mae.pth'
train_dataloader = dict(
    dataset=dict(labelled_fraction=labelled_fraction, unlabelled='drop'),
    sampler=dict(type='InfiniteSampler', shuffle=True))
model = dict(backbone=dict(init_cfg=dict(_delete_=True, type='Pretrained', checkpoint=pretrained,
                                         prefix='backbone.')))
