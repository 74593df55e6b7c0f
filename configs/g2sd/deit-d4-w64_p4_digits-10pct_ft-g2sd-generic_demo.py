# The specific-stage student on its own (no teacher): the G2SD-generic encoder as a DeiT
# (DistilledVisionTransformer + DistillTokenClsHead; class-token CE only, weight 1), to
# separate the effect of the distillation token's teacher labels from the architecture.
_base_ = [
    '../_base_/datasets/digits.py', '../_base_/schedules/digits_vit_finetune.py'
]
labelled_fraction = 0.1
# tools/model_converters/mae_distill_to_vit.py IN.pth OUT.pth --distilled
pretrained = 'work_dirs/mae_distill_demo/deit-d4-w64_g2sd.pth'
train_dataloader = dict(
    dataset=dict(labelled_fraction=labelled_fraction, unlabelled='drop'),
    sampler=dict(type='InfiniteSampler', shuffle=True))
model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(
        type='ClsDataPreprocessor', num_classes=10, mean=[78.0, 78.0, 78.0],
        std=[105.0, 105.0, 105.0], to_rgb=False),
    backbone=dict(
        type='DistilledVisionTransformer',
        arch=dict(embed_dims=64, num_layers=4, num_heads=4, feedforward_channels=256),
        img_size=16,
        patch_size=4,
        drop_path_rate=0.1,
        out_type='cls_token',
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=None,
    head=dict(
        type='mmkd.DistillTokenClsHead', num_classes=10, in_channels=64, inference='mean',
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        init_cfg=[dict(type='TruncNormal', layer='Linear', std=2e-5)]))
