# HFD/BSD (Zhu et al., ICCV 2023) at the paper's scale: DeepLabV3+ ResNet-18 (CNN) and
# SegFormer MiT-B0 (ViT) learn together on Cityscapes, both from ImageNet-pretrained
# backbones (downloaded by mmseg's init_cfg). Data, crop (512x1024), batch and the 80k
# schedule come from mmseg's DeepLabV3+ R18 config; each student keeps its own
# optimizer as in its mmseg config (SGD 0.01 for the CNN, AdamW 6e-5 for SegFormer).
# Not trained here (no Cityscapes).
_base_ = [
    'mmseg::deeplabv3plus/deeplabv3plus_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    '../_base_/models/hfd-bsd_deeplabv3plus-r18_segformer-mit-b0.py',
]
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
cnn_cfg = 'mmseg::deeplabv3plus/deeplabv3plus_r18-d8_4xb2-80k_cityscapes-512x1024.py'
vit_cfg = 'mmseg::segformer/segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py'

model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='CollaborativeDistill',
    students=dict(
        cnn=dict(cfg_path=cnn_cfg, pretrained=True),
        # the CNN's 512x1024 pipeline feeds both; whole-image test like the CNN
        vit=dict(cfg_path=vit_cfg, pretrained=True,
                 model_override=dict(data_preprocessor=dict(size=(512, 1024)),
                                     test_cfg=dict(mode='whole')))),
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
