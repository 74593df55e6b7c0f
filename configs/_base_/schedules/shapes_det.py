# Schedule of the shapes detection demos (about 3 min for the teacher on 2 CPU cores).
# AdamW: these detectors start from random weights (nothing is downloaded), and with
# SGD (lr 0.01-0.02) RetinaNet-R18 stayed below 1 mAP after 24 epochs here, while
# AdamW reached 8 mAP after 8 epochs.
max_epochs = 24
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.001, weight_decay=0.05),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', by_epoch=True, milestones=[18, 22], gamma=0.1),
]
auto_scale_lr = dict(enable=False, base_batch_size=4)
