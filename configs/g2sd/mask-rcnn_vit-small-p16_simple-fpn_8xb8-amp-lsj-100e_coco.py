# The G2SD dense-prediction student on its own, COCO (the paper's detection setting:
# ViTDet-style Mask R-CNN, ViT-S/16 from the G2SD generic stage, 100 epochs of large-scale
# jitter at 1024 px, batch 64, AdamW lr 1e-4, weight decay 0.05, drop path 0.1,
# layer-wise lr decay 0.7 over the 12 blocks -- the official G2SD_det_dis command and
# mask_rcnn_vitdet_b2s_100ep.py). Built from mmdet's Mask R-CNN LSJ config; the backbone is
# mmpretrain's VisionTransformer (stride-16 map of the last block) and the "simple feature
# pyramid" is mmseg's MultiLevelNeck from that single map (1x1 conv, resize by 4, 2, 1,
# 1/2, 1/4, 3x3 conv: P2-P6, 256 channels).
# Differences from ViTDet: global attention in every block (ViTDet: 14x14 windows + 4
# global blocks, relative positions), bilinear resizing instead of (de)convolutions and no
# LayerNorm in the pyramid, mmdet's default Shared2FC box head / 4-conv mask head.
# Backbone weights: convert the generic-stage checkpoint
#   python tools/model_converters/mae_distill_to_vit.py \
#       work_dirs/g2sd_generic/epoch_300.pth work_dirs/g2sd_generic/vit-small-p16_g2sd.pth \
#       --no-final-norm
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_8xb8-amp-lsj-200e_coco.py']

pretrained = 'work_dirs/g2sd_generic/vit-small-p16_g2sd.pth'
arch = 'deit-small'
embed_dims = 384
data_root = 'data/coco/'
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.VisionTransformer',
        arch=arch,
        img_size=1024,
        patch_size=16,
        out_type='featmap',
        out_indices=(11, ),
        final_norm=False,
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(
        _delete_=True,
        type='mmseg.MultiLevelNeck',
        in_channels=[embed_dims],
        out_channels=256,
        scales=[4, 2, 1, 0.5, 0.25]))

# 100 epochs of LSJ: 25 passes over a 4x repeated COCO (mmdet's lsj-100e schedule),
# steps at 88% and 96% as in ViTDet, 250 warm-up iterations.
max_epochs = 25
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=250),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[22, 24],
         gamma=0.1)
]
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='mmkd.DistillLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        layer_decay_rate=0.7,
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={'.pos_embed': dict(decay_mult=0.0), '.cls_token': dict(decay_mult=0.0)}),
    clip_grad=None)
