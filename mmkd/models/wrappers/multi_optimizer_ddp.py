"""Data-parallel training for models that update with several optimizers in one step."""
from __future__ import annotations

from typing import Dict

import torch
import torch.distributed as dist
from mmengine.optim import OptimWrapper, OptimWrapperDict
from torch import nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from mmkd.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class MultiOptimizerDataParallel(nn.Module):
    """Synchronise gradients per optimizer for models with their own multi-optimizer step.

    mmengine's ``MMDistributedDataParallel`` enters ``optim_context`` of the whole
    ``OptimWrapperDict`` (which raises) and expects one backward per forward, while a
    model such as :class:`~mmkd.models.algorithms.CollaborativeDistill` runs one forward
    and then one backward + step per student. This wrapper leaves the model's
    ``train_step`` as it is and, right before each optimizer steps, averages the
    gradients of that optimizer's parameters over all processes (one flat all-reduce;
    parameters without a gradient contribute zeros, so every process reduces the same
    tensors). Gradient clipping in the optimizer wrapper runs after the averaging.

    At construction rank 0's parameters and buffers are broadcast to every process, and
    with ``broadcast_buffers=True`` (default) the buffers (BatchNorm statistics) again
    at the start of every step, as DDP does.

    Config::

        model_wrapper_cfg = dict(type='mmkd.MultiOptimizerDataParallel')

    Args:
        module (nn.Module): the model (already on its device).
        broadcast_buffers (bool): broadcast rank 0's buffers before every step.
        **kwargs: DDP arguments that mmengine's runner or ``tools/train.py`` may pass
            (``device_ids``, ``find_unused_parameters``, ...); not needed here.
    """

    def __init__(self, module: nn.Module, broadcast_buffers: bool = True, **kwargs) -> None:
        super().__init__()
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError('MultiOptimizerDataParallel needs an initialised process group '
                               '(start with tools/dist_train.sh or tools/slurm_train.sh)')
        self.module = module
        self.broadcast_buffers = broadcast_buffers
        self._broadcast(list(module.parameters()) + list(module.buffers()))

    @staticmethod
    def _broadcast(tensors) -> None:
        for tensor in tensors:
            dist.broadcast(tensor.data, src=0)

    @staticmethod
    def average_gradients(optim_wrapper: OptimWrapper) -> None:
        """All-reduce (mean) the gradients of every parameter of ``optim_wrapper``."""
        params = [p for group in optim_wrapper.optimizer.param_groups for p in group['params']
                  if p.requires_grad]
        if not params:
            return
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        grads = [p.grad for p in params]
        flat = _flatten_dense_tensors(grads)
        dist.all_reduce(flat)
        flat /= dist.get_world_size()
        for grad, synced in zip(grads, _unflatten_dense_tensors(flat, grads)):
            grad.copy_(synced)

    def train_step(self, data, optim_wrapper: OptimWrapperDict) -> Dict[str, torch.Tensor]:
        if self.broadcast_buffers:
            self._broadcast(list(self.module.buffers()))
        wrappers = list(optim_wrapper.values()) if isinstance(optim_wrapper, OptimWrapperDict) \
            else [optim_wrapper]
        for wrapper in wrappers:
            original = wrapper.step

            def step(*args, _wrapper=wrapper, _original=original, **kwargs):
                self.average_gradients(_wrapper)
                return _original(*args, **kwargs)

            wrapper.step = step  # instance attribute: update_params() calls self.step()
        try:
            return self.module.train_step(data, optim_wrapper)
        finally:
            for wrapper in wrappers:
                del wrapper.step

    def val_step(self, data):
        return self.module.val_step(data)

    def test_step(self, data):
        return self.module.test_step(data)
