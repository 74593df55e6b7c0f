# HFD/BSD (Zhu et al., ICCV 2023) on ADE20K (150 classes, 512x512 crops): DeepLabV3+
# ResNet-18 (CNN) and SegFormer MiT-B0 (ViT), ImageNet-pretrained backbones. mmseg has no
# R18 DeepLabV3+ for ADE20K, so the CNN is its R50 ADE20K config resized to mmseg's R18
# settings (model_override). Data, batch and the 80k schedule: mmseg's DeepLabV3+ ADE20K
# config. Not trained here (no ADE20K).
_base_ = [
    'mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb4-80k_ade20k-512x512.py',
    '../_base_/models/hfd-bsd_deeplabv3plus-r18_segformer-mit-b0.py',
]
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
cnn_cfg = 'mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb4-80k_ade20k-512x512.py'
vit_cfg = 'mmseg::segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py'

model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='CollaborativeDistill',
    students=dict(
        cnn=dict(cfg_path=cnn_cfg, pretrained=True,
                 model_override={{_base_.hfd_bsd_r18_override}}),
        vit=dict(cfg_path=vit_cfg, pretrained=True)),
    eval_student='cnn',
    hfd={{_base_.hfd_bsd_hfd}},
    region_bsd={{_base_.hfd_bsd_region_bsd}},
    pixel_bsd={{_base_.hfd_bsd_pixel_bsd}})

optim_wrapper = {{_base_.hfd_bsd_optim_wrapper}}
param_scheduler = dict(
    _delete_=True,
    cnn=[dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=80000, by_epoch=False)],
    vit=[dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
         dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=80000, by_epoch=False)])
