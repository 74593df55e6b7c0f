# A tiny ViT teacher for the digits demos (16x16 input, 4x4 patches -> 16 tokens + cls,
# width 96, 4 layers), to show heterogeneous ViT -> CNN distillation.
model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(
        type='ClsDataPreprocessor', num_classes=10, mean=[78.0, 78.0, 78.0],
        std=[105.0, 105.0, 105.0], to_rgb=False),
    backbone=dict(
        type='VisionTransformer',
        arch=dict(embed_dims=96, num_layers=4, num_heads=4, feedforward_channels=192),
        img_size=16,
        patch_size=4,
        out_type='cls_token',
        drop_rate=0.0),
    neck=None,
    head=dict(type='VisionTransformerClsHead', num_classes=10, in_channels=96,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))
