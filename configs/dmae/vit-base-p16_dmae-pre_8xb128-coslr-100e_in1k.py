# Fine-tuning of the DMAE ViT-B/16 on ImageNet-1k (the paper reports 84.0% top-1), with
# mmpretrain's MAE fine-tuning config and the official finetune.sh values: 8 GPUs x 128,
# 100 epochs, lr 5e-4 * 1024 / 256, wd 0.05, drop path 0.1, mixup 0.8, cutmix 1.0,
# random erasing 0.25; layer-wise lr decay 0.7 (finetune.sh does not set it, so DMAE's
# main_finetune.py default 0.7 applies; MAE's own default is 0.75), through
# mmkd.DistillLayerDecayOptimWrapperConstructor (the same rule as MAE's param_groups_lrd:
# embeddings 0.7^13, block i 0.7^(12-i), head 1). First convert the distillation checkpoint:
#   python tools/model_converters/mae_distill_to_vit.py \
#       work_dirs/dmae_vit-l_vit-b/epoch_100.pth work_dirs/dmae_vit-l_vit-b/vit-base-p16_dmae.pth \
#       --no-final-norm --out-type avg_featmap
_base_ = ['mmpretrain::mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py']
pretrained = 'work_dirs/dmae_vit-l_vit-b/vit-base-p16_dmae.pth'
data_root = 'data/imagenet/'
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained,
                                         prefix='backbone.')))
optim_wrapper = dict(optimizer=dict(lr=5e-4 * 1024 / 256),
                     constructor='mmkd.DistillLayerDecayOptimWrapperConstructor',
                     paramwise_cfg=dict(layer_decay_rate=0.7))
