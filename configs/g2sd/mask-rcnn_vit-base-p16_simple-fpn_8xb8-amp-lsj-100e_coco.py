# Teacher of the G2SD detection stage: the same ViTDet-style Mask R-CNN with the MAE ViT-B/16
# (mmpretrain's 1600-epoch MAE; convert with mae_distill_to_vit.py --no-final-norm), trained
# on COCO with the same recipe (the G2SD teacher: ViTDet-B, 100 epochs). G2SD fine-tunes it
# first; its checkpoint is the distillation config's teacher_ckpt.
_base_ = ['./mask-rcnn_vit-small-p16_simple-fpn_8xb8-amp-lsj-100e_coco.py']
pretrained = 'work_dirs/mae_vit-base-p16/vit-base-p16_mae.pth'
embed_dims = 768
model = dict(
    backbone=dict(arch='base', init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[embed_dims]))
