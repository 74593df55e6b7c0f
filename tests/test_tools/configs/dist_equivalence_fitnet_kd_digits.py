# FitNet + logit KD on digits, made exactly comparable between 1 and 2 processes:
# - the student uses GroupNorm (per-sample statistics): BatchNorm's batch statistics
#   differ when each process sees half the batch (SyncBN has no CPU implementation);
# - every image keeps its label (a mean over labelled samples is not the mean of two
#   per-process means when the processes hold different numbers of labels);
# - no random augmentation (each process draws from its own RNG).
_base_ = ['../../../configs/fitnet/fitnet_resnet18-w32_resnet18-w8_digits-10pct_demo.py']

model = dict(architecture=dict(backbone=dict(
    norm_cfg=dict(type='GN', num_groups=4, requires_grad=True))))
train_dataloader = dict(
    batch_size=16,
    dataset=dict(labelled_fraction=1.0, unlabelled='drop', pipeline=[dict(type='PackInputs')]))
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=4, val_interval=1000)
param_scheduler = []
randomness = dict(seed=0, deterministic=True)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1000))
# loss_dump_hook.py lies next to the test; the test puts tests/test_tools on PYTHONPATH.
custom_imports = dict(imports=['loss_dump_hook'], allow_failed_imports=False)
custom_hooks = [dict(type='LossDumpHook')]
