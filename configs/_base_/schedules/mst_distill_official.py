# MST-Distill's official schedule (github.com/Gray-OREO/MST-Distill, main-MST-Distill.py):
# Adam, constant lr 1e-4 in all stages (CrisisMMD-V2: 5e-3), 100 epochs of each stage;
# in the student stage w_kl halves after stage epochs 0, 30, 60, 90 and w_lb is
# multiplied by 0.9 after stage epochs 0, 10, 20, ...
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-4))
stage_epochs = 100
train_cfg = dict(by_epoch=True, max_epochs=3 * stage_epochs, val_interval=10)
val_cfg = dict()
test_cfg = dict()
custom_hooks = [
    dict(type='mmkd.MSTStageHook', by_epoch=True,
         stages=[('cotrain', stage_epochs), ('masknet', stage_epochs), ('student', stage_epochs)],
         kd_decay=(30, 0.5), lb_decay=(10, 0.9)),
]
# Not every module gets a gradient in every stage (MaskNets only in 'masknet', ...).
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)
