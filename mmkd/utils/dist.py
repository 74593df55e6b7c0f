"""Distributed set-up that also works on machines without GPUs."""
from __future__ import annotations

import os

import torch


def init_cpu_dist_if_needed(launcher: str, backend: str = 'gloo') -> bool:
    """Initialise torch.distributed with gloo for CPU-only ``pytorch`` launches.

    mmengine 0.10.7's ``init_dist('pytorch')`` calls ``torch.cuda.set_device``
    unconditionally, which fails on a machine without a GPU ("Found no NVIDIA
    driver"). The Runner skips ``init_dist`` when a process group already exists,
    so on CPU we create it here from torchrun's environment variables. Returns True
    when it initialised the group.
    """
    if launcher != 'pytorch' or torch.cuda.is_available():
        return False
    import torch.distributed as dist
    if dist.is_initialized():
        return False
    missing = [k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT') if k not in os.environ]
    if missing:
        raise RuntimeError(f'--launcher pytorch needs torchrun\'s environment; missing {missing}. '
                           'Start it with tools/dist_train.sh CONFIG NUM_PROCS')
    dist.init_process_group(backend=backend)
    return True


def adapt_cfg_for_cpu_dist(cfg, launcher: str) -> None:
    """Let mmengine's DDP wrapper run on CPU processes.

    mmengine 0.10.7 always passes ``device_ids=[LOCAL_RANK]`` to
    ``MMDistributedDataParallel``, which torch rejects for CPU modules. Without GPUs
    we set ``model_wrapper_cfg.device_ids=None`` (keeping any other wrapper setting).
    """
    if launcher == 'none' or torch.cuda.is_available():
        return
    wrapper = cfg.get('model_wrapper_cfg', None) or dict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper.setdefault('device_ids', None)
    cfg.model_wrapper_cfg = wrapper


def finish_dist() -> None:
    """Tear down the default process group after a tool finished its work.

    mmengine leaves the process group alive at interpreter exit. With gloo on CPU the
    group's worker threads are then destroyed while still joinable, and a rank can die
    with "terminate called without an active exception" (SIGABRT) after a run that
    trained and saved correctly. A barrier first keeps one rank from tearing down while
    the other still talks to it. Call it only on success: after an exception the other
    ranks may never reach the barrier.
    """
    import torch.distributed as dist
    if not (dist.is_available() and dist.is_initialized()):
        return
    try:
        dist.barrier()
    finally:
        dist.destroy_process_group()
