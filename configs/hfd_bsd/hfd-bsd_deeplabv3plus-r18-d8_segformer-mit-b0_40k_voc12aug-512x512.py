# HFD/BSD (Zhu et al., ICCV 2023) on PASCAL VOC 2012 + SBD augmentation (21 classes,
# 512x512 crops): DeepLabV3+ ResNet-18 (CNN) and SegFormer MiT-B0 (ViT), ImageNet-
# pretrained backbones. mmseg has neither an R18 DeepLabV3+ nor a SegFormer for VOC:
# the CNN is its R50 VOC config with mmseg's R18 settings, the ViT its MiT-B0 ADE20K
# config with a 21-class head (model_override). Data, batch and the 40k schedule:
# mmseg's DeepLabV3+ VOC-aug config. Not trained here (no VOC). Single process only.
_base_ = ['mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb4-40k_voc12aug-512x512.py']
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
r18 = dict(pretrained='open-mmlab://resnet18_v1c', backbone=dict(depth=18),
           decode_head=dict(c1_in_channels=64, c1_channels=12, in_channels=512, channels=128),
           auxiliary_head=dict(in_channels=256, channels=64))
cnn_cfg = 'mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb4-40k_voc12aug-512x512.py'
vit_cfg = 'mmseg::segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py'

model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='CollaborativeDistill',
    students=dict(
        cnn=dict(cfg_path=cnn_cfg, pretrained=True, model_override=r18),
        vit=dict(cfg_path=vit_cfg, pretrained=True,
                 model_override=dict(decode_head=dict(num_classes=21)))),
    eval_student='cnn',
    # low layers: ResNet layer1 (64 ch) and MiT stage 1 (32 ch), both stride 4
    hfd=dict(
        sources=dict(cnn=dict(source='backbone.layer1'),
                     vit=dict(source='backbone', data_idx=0)),
        connectors=dict(cnn=dict(type='ConvConnector', in_channels=64, out_channels=32),
                        vit=dict(type='ConvConnector', in_channels=32, out_channels=64)),
        loss=dict(type='HFDLoss', loss_weight=1.0)),
    # decoders' last features before the classifier: 128 ch (DeepLabV3+ R18) and
    # 256 ch (SegFormer head), both stride 4; 64x64-pixel regions (8x8 grid)
    region_bsd=dict(
        sources=dict(cnn=dict(source='decode_head.dropout', inputs=True),
                     vit=dict(source='decode_head.dropout', inputs=True)),
        connectors=dict(cnn=dict(type='ConvConnector', in_channels=128, out_channels=256),
                        vit=dict(type='ConvConnector', in_channels=256, out_channels=128)),
        loss=dict(type='RegionBSDLoss', region_size=64, loss_weight=1.0)),
    pixel_bsd=dict(loss=dict(type='PixelBSDLoss', tau=1.0, loss_weight=1.0)))

optim_wrapper = dict(
    _delete_=True,
    constructor='mmkd.CollaborativeOptimWrapperConstructor',
    cnn=dict(type='OptimWrapper',
             optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0005)),
    vit=dict(type='OptimWrapper',
             optimizer=dict(type='AdamW', lr=0.00006, betas=(0.9, 0.999), weight_decay=0.01),
             paramwise_cfg=dict(custom_keys={
                 'pos_block': dict(decay_mult=0.),
                 'norm': dict(decay_mult=0.),
                 'head': dict(lr_mult=10.)})))
param_scheduler = dict(
    _delete_=True,
    cnn=[dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=40000, by_epoch=False)],
    vit=[dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
         dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=40000, by_epoch=False)])
# Under torch.distributed: one gradient all-reduce per student's optimizer (mmengine's DDP
# wrapper cannot run a step with two optimizers).
model_wrapper_cfg = dict(type='mmkd.MultiOptimizerDataParallel')
