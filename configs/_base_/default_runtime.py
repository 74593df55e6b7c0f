# Runtime shared by mmkd's configs (any task scope; the task config sets default_scope).
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # atomic_local: a checkpoint is written to a temp file and renamed (mmkd.engine)
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2,
                    backend_args=dict(backend='atomic_local')),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # the torch random state goes into each checkpoint, so --resume is exact (mmkd.engine)
    rng_state=dict(type='mmkd.RandomStateHook'),
)
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # gloo works on CPU and GPU; tools/dist_train.sh switches to nccl when GPUs exist.
    dist_cfg=dict(backend='gloo'),
)
log_processor = dict(type='LogProcessor', window_size=10, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
