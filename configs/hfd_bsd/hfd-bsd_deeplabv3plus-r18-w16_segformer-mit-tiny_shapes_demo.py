# HFD + region-wise BSD + pixel-wise BSD (Zhu et al., ICCV 2023) between a tiny
# DeepLabV3+ (CNN) and a tiny SegFormer (ViT) on the shapes data. Same data, schedule
# (600 iterations, inherited from deeplabv3plus_r18-w16_shapes_alone.py; AdamW 1e-3,
# poly), batch and seed as the two *_alone configs.
# Evaluate either student: tools/test.py CONFIG CKPT --cfg-options model.eval_student=vit
_base_ = ['./deeplabv3plus_r18-w16_shapes_alone.py']

model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='CollaborativeDistill',
    students=dict(
        cnn=dict(cfg_path='mmkd::hfd_bsd/deeplabv3plus_r18-w16_shapes_alone.py'),
        vit=dict(cfg_path='mmkd::hfd_bsd/segformer_mit-tiny_shapes_alone.py')),
    eval_student='cnn',
    logits=dict(cnn='decode_head.conv_seg', vit='decode_head.conv_seg'),
    # Low-layer features: ResNet layer1 (16 ch) and the MiT stage-1 tokens (16 ch, after
    # its LayerNorm), both at stride 4 (32x32). The tokens become a map (adapter); each
    # learner maps its feature into the other's space with a 1x1 conv.
    hfd=dict(
        sources=dict(cnn=dict(source='backbone.layer1'),
                     vit=dict(source='backbone.layers.0.2')),
        adapters=dict(vit=dict(type='TokensToMap', in_channels=16)),
        connectors=dict(cnn=dict(type='ConvConnector', in_channels=16, out_channels=16),
                        vit=dict(type='ConvConnector', in_channels=16, out_channels=16)),
        loss=dict(type='HFDLoss', loss_weight=1.0)),
    # Region-wise BSD on the decoders' last features (inputs of their dropout before
    # the classifier): DeepLabV3+ 32 ch and SegFormer 64 ch, both 32x32; 32x32-pixel
    # regions of the 128x128 label map (a 4x4 grid).
    region_bsd=dict(
        sources=dict(cnn=dict(source='decode_head.dropout', inputs=True),
                     vit=dict(source='decode_head.dropout', inputs=True)),
        connectors=dict(cnn=dict(type='ConvConnector', in_channels=32, out_channels=64),
                        vit=dict(type='ConvConnector', in_channels=64, out_channels=32)),
        loss=dict(type='RegionBSDLoss', region_size=32, loss_weight=1.0)),
    pixel_bsd=dict(loss=dict(type='PixelBSDLoss', tau=1.0, loss_weight=1.0)))

# One optimizer per student, each as in its *_alone config.
optim_wrapper = dict(
    _delete_=True,
    constructor='mmkd.CollaborativeOptimWrapperConstructor',
    cnn=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.01)),
    vit=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.01)))
# Under torch.distributed: one gradient all-reduce per student's optimizer (mmengine's DDP
# wrapper cannot run a step with two optimizers).
model_wrapper_cfg = dict(type='mmkd.MultiOptimizerDataParallel')
