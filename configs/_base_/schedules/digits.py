# A short SGD + cosine schedule for the digits demos (epochs set by each config).
max_epochs = 30
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=max_epochs, by_epoch=True, eta_min=1e-4)]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=32, enable=False)
