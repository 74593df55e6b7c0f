# Classifier on the tiny student ViT (depth 4, width 64, patch 4, 16x16), MAE fine-tuning
# recipe: mean of the patch tokens + LayerNorm (out_type='avg_featmap', final_norm=False).
# Set model.backbone.init_cfg to start from a converted pre-training checkpoint
# (tools/model_converters/mae_distill_to_vit.py).
model = dict(
    _scope_='mmpretrain',
    type='ImageClassifier',
    data_preprocessor=dict(
        type='ClsDataPreprocessor', num_classes=10, mean=[78.0, 78.0, 78.0],
        std=[105.0, 105.0, 105.0], to_rgb=False),
    backbone=dict(
        type='VisionTransformer',
        arch=dict(embed_dims=64, num_layers=4, num_heads=4, feedforward_channels=256),
        img_size=16,
        patch_size=4,
        drop_path_rate=0.1,
        out_type='avg_featmap',
        final_norm=False,
        init_cfg=None),
    neck=None,
    head=dict(
        type='LinearClsHead', num_classes=10, in_channels=64,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        init_cfg=[dict(type='TruncNormal', layer='Linear', std=2e-5)]))
