# G2SD generic distillation (Huang et al., CVPR 2023, arXiv:2302.14771), ImageNet-1k, the
# paper's main setting: an MAE ViT-S/16 student (decoder 256-d, 4 blocks, 8 heads) learns
# from an MAE-pre-trained ViT-B/16 for 300 epochs, with no pixel loss. A predictor MLP
# (256 -> 512 -> 512, GELU) on the student's last decoder block regresses the hidden
# states of the teacher decoder's block 4 of 8 (index 3), layer-normalised without affine
# parameters, for all 197 tokens (visible, masked and class), smooth L1 with beta 2,
# weight 1. Mask ratio 0.75, the same mask for both. The teacher stops after its 4th
# decoder block; the student after its last decoder block.
# Recipe of the official GD.sh / main_distill.py: 8 GPUs x 256 x accum 2 = 4096, AdamW lr
# 1.5e-4 * 4096 / 256, betas (0.9, 0.95), wd 0.05, 10 warm-up epochs, cosine to 2.5e-6,
# drop path 0, RandomResizedCrop(0.2, 1) + flip.
_base_ = ['mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py']

teacher_ckpt = 'https://download.openmmlab.com/mmselfsup/1.x/mae/mae_vit-base-p16_8xb512-fp16-coslr-1600e_in1k/mae_vit-base-p16_8xb512-fp16-coslr-1600e_in1k_20220825-f7569ca2.pth'  # noqa: E501
data_root = 'data/imagenet/'
train_dataloader = dict(batch_size=256, dataset=dict(data_root=data_root))
student = dict(
    _scope_='mmpretrain',
    type='MAE',
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(type='MAEViT', arch='deit-small', patch_size=16, mask_ratio=0.75),
    neck=dict(type='MAEPretrainDecoder', patch_size=16, in_chans=3, embed_dim=384,
              decoder_embed_dim=256, decoder_depth=4, decoder_num_heads=8, mlp_ratio=4.),
    head=dict(type='MAEPretrainHead', norm_pix=True, patch_size=16,
              loss=dict(type='PixelReconstructionLoss', criterion='L2')),
    init_cfg=[
        dict(type='Xavier', layer='Linear', distribution='uniform'),
        dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0)
    ])
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='MaskedImageDistill',
    architecture=student,
    teacher=dict(cfg_path='mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-1600e_in1k.py',
                 pretrained=False),
    teacher_ckpt=teacher_ckpt,
    mask_ratio=0.75,
    teacher_early_exit=True,
    student_early_exit=True,
    calculate_student_loss=False,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(dec=dict(type='ModuleOutputs', source='neck.decoder_blocks.3')),
        teacher_recorders=dict(dec=dict(type='ModuleOutputs', source='neck.decoder_blocks.3')),
        connectors=dict(predictor=dict(type='MLPConnector', in_features=256,
                                       hidden_features=512, out_features=512)),
        distill_losses=dict(loss_g2sd=dict(type='LayerNormSmoothL1Loss', beta=2.0,
                                           loss_weight=1.0)),
        loss_forward_mappings=dict(
            loss_g2sd=dict(
                s_feature=dict(from_student=True, recorder='dec', connector='predictor'),
                t_feature=dict(from_student=False, recorder='dec')))))
# the student's decoder norm and pixel head get no gradient (no pixel loss)
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)
optim_wrapper = dict(
    accumulative_counts=2,
    optimizer=dict(lr=1.5e-4 * 4096 / 256, betas=(0.9, 0.95), weight_decay=0.05))
max_epochs = 300
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=10,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 10, by_epoch=True, begin=10,
         end=max_epochs, eta_min=2.5e-6, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
resume = False
auto_scale_lr = dict(base_batch_size=4096)
