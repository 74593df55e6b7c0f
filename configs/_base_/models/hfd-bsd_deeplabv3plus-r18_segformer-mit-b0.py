# Parts shared by the real-scale HFD/BSD configs (DeepLabV3+ R18 + SegFormer MiT-B0);
# each config inherits its data and schedule from an mmseg config and picks these up
# with {{_base_.<name>}}. Names are unique so they do not clash with mmseg's keys.

# mmseg's R18 DeepLabV3+ settings, applied to an R50 config where mmseg has no R18 one
hfd_bsd_r18_override = dict(
    pretrained='open-mmlab://resnet18_v1c', backbone=dict(depth=18),
    decode_head=dict(c1_in_channels=64, c1_channels=12, in_channels=512, channels=128),
    auxiliary_head=dict(in_channels=256, channels=64))
# low layers: ResNet layer1 (64 ch) and MiT stage 1 (32 ch), both stride 4
hfd_bsd_hfd = dict(
    sources=dict(cnn=dict(source='backbone.layer1'), vit=dict(source='backbone', data_idx=0)),
    connectors=dict(cnn=dict(type='ConvConnector', in_channels=64, out_channels=32),
                    vit=dict(type='ConvConnector', in_channels=32, out_channels=64)),
    loss=dict(type='HFDLoss', loss_weight=1.0))
# decoders' last features before the classifier: 128 ch (DeepLabV3+ R18) and 256 ch
# (SegFormer head), both stride 4; 64x64-pixel regions
hfd_bsd_region_bsd = dict(
    sources=dict(cnn=dict(source='decode_head.dropout', inputs=True),
                 vit=dict(source='decode_head.dropout', inputs=True)),
    connectors=dict(cnn=dict(type='ConvConnector', in_channels=128, out_channels=256),
                    vit=dict(type='ConvConnector', in_channels=256, out_channels=128)),
    loss=dict(type='RegionBSDLoss', region_size=64, loss_weight=1.0))
hfd_bsd_pixel_bsd = dict(loss=dict(type='PixelBSDLoss', tau=1.0, loss_weight=1.0))
# each student keeps the optimizer of its mmseg config
hfd_bsd_optim_wrapper = dict(
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
# Under torch.distributed: one gradient all-reduce per student's optimizer (mmengine's DDP
# wrapper cannot run a step with two optimizers).
model_wrapper_cfg = dict(type='mmkd.MultiOptimizerDataParallel')
