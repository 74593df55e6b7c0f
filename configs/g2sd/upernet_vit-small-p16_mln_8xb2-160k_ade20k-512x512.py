# The G2SD segmentation student on its own, ADE20K (the paper's setting: UperNet, ViT-S/16
# from the G2SD generic stage, 512x512 crops, 160k iterations, batch 16, AdamW lr 1e-4,
# weight decay 0.05, drop path 0.1, layer-wise lr decay 0.65 over the 12 blocks, 1500
# linear warm-up iterations then poly (power 1) -- the official G2SD_seg_dis configs).
# Built from mmseg's DeiT-S ViT + MultiLevelNeck + UperNet config; features of blocks 4, 6,
# 8 and 12 (G2SD: out_indices 3, 5, 7, 11). Difference: mmseg's plain VisionTransformer
# (absolute positions, no layer scale) instead of G2SD's BEiT-style MAE backbone
# (relative position bias, layer-scale init 1).
# Backbone weights, converted to mmseg's ViT keys:
#   python tools/model_converters/mae_distill_to_vit.py \
#       work_dirs/g2sd_generic/epoch_300.pth work_dirs/g2sd_generic/vit-small-p16_g2sd_mmseg.pth \
#       --no-final-norm --format mmseg
_base_ = ['mmseg::vit/vit_deit-s16_mln_upernet_8xb2-160k_ade20k-512x512.py']
pretrained = 'work_dirs/g2sd_generic/vit-small-p16_g2sd_mmseg.pth'
data_root = 'data/ade/ADEChallengeData2016'
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
model = dict(
    pretrained=None,
    backbone=dict(
        out_indices=(3, 5, 7, 11), drop_path_rate=0.1, final_norm=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='mmkd.DistillLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        layer_decay_rate=0.65,
        custom_keys={'pos_embed': dict(decay_mult=0.), 'cls_token': dict(decay_mult=0.),
                     'norm': dict(decay_mult=0.)}))
