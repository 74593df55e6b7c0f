# Tiny MAE teacher for the digits demos: ViT depth 8, width 128, 4 heads, patch 4 on
# 16x16 images (16 patches); decoder depth 4, width 64 (mmpretrain MAE, random init).
model = dict(
    # mmseg also registers an 'MAE' (a backbone): name the package explicitly
    _scope_='mmpretrain',
    type='MAE',
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor', mean=[78.0, 78.0, 78.0], std=[105.0, 105.0, 105.0],
        to_rgb=False),
    backbone=dict(
        type='MAEViT',
        arch=dict(embed_dims=128, num_layers=8, num_heads=4, feedforward_channels=512),
        img_size=16,
        patch_size=4,
        mask_ratio=0.75),
    neck=dict(
        type='MAEPretrainDecoder',
        num_patches=16,
        patch_size=4,
        in_chans=3,
        embed_dim=128,
        decoder_embed_dim=64,
        decoder_depth=4,
        decoder_num_heads=4,
        mlp_ratio=4.),
    head=dict(
        type='MAEPretrainHead',
        # per-patch pixel normalisation divides nearly constant 4x4 background patches
        # by ~0: plain pixels are the target on digits
        norm_pix=False,
        patch_size=4,
        loss=dict(type='PixelReconstructionLoss', criterion='L2')),
    init_cfg=[
        dict(type='Xavier', layer='Linear', distribution='uniform'),
        dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0)
    ])
