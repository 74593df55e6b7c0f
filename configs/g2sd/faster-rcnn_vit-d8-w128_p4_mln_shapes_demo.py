# Teacher of the G2SD specific-stage detection demo: the same Faster R-CNN with the tiny
# MAE teacher's ViT (depth 8, width 128, patch 4), initialised from its MAE pre-training
# (tools/demo/mae_distill_demo.py writes the MAE checkpoint), converted with
#   python tools/model_converters/mae_distill_to_vit.py \
#       work_dirs/mae_distill_demo/teacher_mae_vit-d8-w128_digits.pth \
#       work_dirs/g2sd_dense_demo/vit-d8-w128_p4_mae_dense.pth --no-final-norm
_base_ = ['./faster-rcnn_vit-d4-w64_p4_mln_shapes_demo.py']
pretrained = 'work_dirs/g2sd_dense_demo/vit-d8-w128_p4_mae_dense.pth'
embed_dims = 128
num_layers = 8
model = dict(
    backbone=dict(
        arch=dict(embed_dims=embed_dims, num_layers=num_layers, num_heads=4,
                  feedforward_channels=4 * embed_dims),
        out_indices=(num_layers - 1, ),
        init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[embed_dims]))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
    clip_grad=dict(max_norm=35, norm_type=2))
# the teacher trains longer than the students (12 vs 6 epochs), with lr 1e-3 and no layer
# decay (the students' first recipe, which diverged for the small ViT but not for this one)
max_epochs = 12
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', by_epoch=True, milestones=[9, 11], gamma=0.1),
]
