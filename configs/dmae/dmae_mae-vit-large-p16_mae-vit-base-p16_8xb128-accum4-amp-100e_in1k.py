# DMAE (Bai et al., CVPR 2023, arXiv:2208.12256), ImageNet-1k, the paper's main setting:
# an MAE ViT-B/16 student (decoder 512-d, 8 blocks, normalised-pixel loss) distilled from
# an MAE-pre-trained ViT-L/16 for 100 epochs. The student's block 9 of 12 (index 8),
# projected 768 -> 1024 by one linear layer, is aligned with the teacher's block 18 of 24
# (index 17): L1 between per-token L2-normalised features of the visible tokens (class
# token included), weight 1, added to the pixel loss. Mask ratio 0.75 for both; the
# teacher runs 18 blocks on the 49 visible patches and nothing else.
# Recipe of the official pretrain.sh / main_distill.py: 8 GPUs x 128 x accum 4 = 4096,
# AdamW lr 1.5e-4 * 4096 / 256, betas (0.9, 0.95), wd 0.05, 40 warm-up epochs (the code
# default; pretrain.sh does not set it), cosine, RandomResizedCrop(0.2, 1) + flip.
# Data: ImageNet under data/imagenet/ (mmpretrain layout: train/ + meta/train.txt).
_base_ = ['mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py']

# DMAE's teacher is MAE's ViT-L (their README links a Google-Drive copy); here the
# mmpretrain MAE ViT-L/16 1600-epoch checkpoint, which mmpretrain's MAE loads as is.
teacher_ckpt = 'https://download.openmmlab.com/mmselfsup/1.x/mae/mae_vit-large-p16_8xb512-fp16-coslr-1600e_in1k/mae_vit-large-p16_8xb512-fp16-coslr-1600e_in1k_20220825-cc7e98c9.pth'  # noqa: E501
data_root = 'data/imagenet/'
train_dataloader = dict(batch_size=128, dataset=dict(data_root=data_root))
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='MaskedImageDistill',
    architecture={{_base_.model}},
    teacher=dict(cfg_path='mmpretrain::mae/mae_vit-large-p16_8xb512-amp-coslr-1600e_in1k.py',
                 pretrained=False),
    teacher_ckpt=teacher_ckpt,
    mask_ratio=0.75,
    teacher_early_exit=True,
    calculate_student_loss=True,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(feat=dict(type='ModuleOutputs', source='backbone.layers.8')),
        teacher_recorders=dict(feat=dict(type='ModuleOutputs', source='backbone.layers.17')),
        connectors=dict(proj=dict(type='LinearConnector', in_features=768, out_features=1024)),
        distill_losses=dict(loss_dmae=dict(type='NormalizedL1Loss', loss_weight=1.0)),
        loss_forward_mappings=dict(
            loss_dmae=dict(
                s_feature=dict(from_student=True, recorder='feat', connector='proj'),
                t_feature=dict(from_student=False, recorder='feat')))))
optim_wrapper = dict(
    accumulative_counts=4,
    optimizer=dict(lr=1.5e-4 * 4096 / 256, betas=(0.9, 0.95), weight_decay=0.05))
max_epochs = 100
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=40,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 40, by_epoch=True, begin=40,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
resume = False
auto_scale_lr = dict(base_batch_size=4096)
