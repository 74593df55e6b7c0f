# Teacher of the G2SD specific-stage segmentation demo: the same UperNet with the tiny MAE
# teacher's ViT (depth 8, width 128, patch 4, blocks 2, 4, 6, 8 to the neck), initialised
# from its MAE pre-training (see faster-rcnn_vit-d8-w128_p4_mln_shapes_demo.py for the
# conversion command). Trained longer than the students (500 vs 400 iterations).
_base_ = ['./upernet_vit-d4-w64_p4_mln_shapes_demo.py']
pretrained = 'work_dirs/g2sd_dense_demo/vit-d8-w128_p4_mae_dense.pth'
embed_dims = 128
model = dict(
    backbone=dict(
        arch=dict(embed_dims=embed_dims, num_layers=8, num_heads=4,
                  feedforward_channels=4 * embed_dims),
        out_indices=(1, 3, 5, 7),
        init_cfg=dict(checkpoint=pretrained)),
    # neck and heads as wide as the student's (64): only the backbone differs
    neck=dict(in_channels=[embed_dims] * 4))
max_iters = 500
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters,
                        by_epoch=False)]
default_hooks = dict(checkpoint=dict(interval=max_iters))
