# G2SD specific distillation for classification (Huang et al., CVPR 2023), ImageNet-1k:
# the G2SD-generic ViT-S/16 gets a distillation token (DeiT layout) and is fine-tuned
# with 0.5 * CE(class token, label) + 0.5 * CE(dist token, argmax of the fine-tuned MAE
# ViT-B teacher); it predicts with the mean of both heads. The paper reports ViT-S at
# 98.7% of its ViT-B teacher's top-1.
# Recipe of the official SD.sh / main_finetune_dis.py: 8 GPUs x 128, 200 epochs, AdamW
# lr 1e-3 * 1024 / 256, wd 0.05, 5 warm-up epochs, cosine to 1e-6, drop path 0, mixup 0.8,
# cutmix 1.0, label smoothing 0.1, RandAugment, random erasing 0.25 (mmpretrain's MAE
# fine-tuning pipeline); the teacher sees the same mixed images. Layer-wise lr decay 0.75
# (SD.sh) over the student's 12 blocks: mmkd.DistillLayerDecayOptimWrapperConstructor
# finds them under `architecture.backbone.layers.<i>` (embeddings 0.75^13, block i
# 0.75^(12-i), head and distillation token 1; the teacher is in no optimizer group).
# Convert the generic-stage checkpoint first:
#   python tools/model_converters/mae_distill_to_vit.py \
#       work_dirs/g2sd_generic/epoch_300.pth work_dirs/g2sd_generic/deit-small-p16_g2sd.pth \
#       --distilled
_base_ = ['mmpretrain::mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py']

# MAE ViT-B/16 fine-tuned by mmpretrain (83.5% top-1; G2SD used MAE's official 83.6% one)
teacher_ckpt = 'https://download.openmmlab.com/mmselfsup/1.x/mae/mae_vit-base-p16_8xb512-fp16-coslr-1600e_in1k/vit-base-p16_ft-8xb128-coslr-100e_in1k/vit-base-p16_ft-8xb128-coslr-100e_in1k_20220825-cf70aa21.pth'  # noqa: E501
pretrained = 'work_dirs/g2sd_generic/deit-small-p16_g2sd.pth'
data_root = 'data/imagenet/'
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='SingleTeacherDistill',
    architecture=dict(
        _scope_='mmpretrain',
        type='ImageClassifier',
        backbone=dict(
            type='DistilledVisionTransformer',
            arch='deit-small',
            img_size=224,
            patch_size=16,
            drop_path_rate=0.0,
            out_type='cls_token',
            init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
        neck=None,
        head=dict(
            type='mmkd.DistillTokenClsHead',
            num_classes=1000,
            in_channels=384,
            inference='mean',
            loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original',
                      loss_weight=0.5),
            init_cfg=[dict(type='TruncNormal', layer='Linear', std=2e-5)]),
        train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)])),
    teacher=dict(cfg_path='mmpretrain::mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py',
                 pretrained=False),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(
            dist_logits=dict(type='ModuleOutputs', source='head.layers.head_dist')),
        teacher_recorders=dict(logits=dict(type='ModuleOutputs', source='head.fc')),
        distill_losses=dict(loss_hard=dict(type='HardDistillationLoss', loss_weight=0.5)),
        loss_forward_mappings=dict(
            loss_hard=dict(
                preds_S=dict(from_student=True, recorder='dist_logits'),
                preds_T=dict(from_student=False, recorder='logits')))))
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3 * 1024 / 256, weight_decay=0.05, betas=(0.9, 0.999)),
    constructor='mmkd.DistillLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.75, custom_keys={
        '.ln': dict(decay_mult=0.0), '.bias': dict(decay_mult=0.0),
        '.cls_token': dict(decay_mult=0.0), '.dist_token': dict(decay_mult=0.0),
        '.pos_embed': dict(decay_mult=0.0)}))
max_epochs = 200
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 5, by_epoch=True, begin=5,
         end=max_epochs, eta_min=1e-6, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs)
