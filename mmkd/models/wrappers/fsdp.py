"""FSDP wrapper for (multimodal) LLM students that runs on GPUs and on CPU processes.

mmengine 0.10.7's ``FSDPStrategy`` builds its wrapper with ``device_id=LOCAL_RANK``,
which torch reads as a CUDA device ("Found no NVIDIA driver" on a CPU machine), and
torch's FSDP refuses ``device_id=None`` without an accelerator ("FSDP needs a non-CPU
accelerator device"). It does run on CPU processes with the gloo backend when
``device_id=torch.device('cpu')``, which a text config cannot spell. This wrapper picks
the device itself, so one config trains on GPUs (nccl) and on CPU processes (gloo):

.. code-block:: python

    runner_type = 'FlexibleRunner'
    strategy = dict(
        type='FSDPStrategy',
        model_wrapper=dict(type='mmkd.LLMFullyShardedDataParallel',
                           wrap_layer_names=['Qwen2DecoderLayer', 'SiglipEncoderLayer'],
                           mixed_precision=dict(param_dtype='bfloat16', reduce_dtype='float32',
                                                buffer_dtype='float32')))

``wrap_layer_names`` gives the transformer auto-wrap policy by class name (a text
config cannot hold the classes): every decoder/encoder layer becomes its own FSDP
unit, so only one layer's full parameters exist at a time.
"""
from __future__ import annotations

import functools
from typing import Optional, Sequence

import torch
from mmengine.model.wrappers import MMFullyShardedDataParallel
from torch import nn

from mmkd.registry import MODEL_WRAPPERS


def layer_names_wrap_policy(module: nn.Module, recurse: bool, nonwrapped_numel: int,
                            layer_names: Sequence[str] = ()) -> bool:
    """FSDP auto-wrap policy: wrap every module whose class name is in ``layer_names``."""
    if recurse:
        return True
    return type(module).__name__ in set(layer_names)


@MODEL_WRAPPERS.register_module()
class LLMFullyShardedDataParallel(MMFullyShardedDataParallel):
    """``MMFullyShardedDataParallel`` with a device chosen by the machine.

    Args:
        module (nn.Module): the model (an mmkd algorithm).
        device_id (int | torch.device, optional): default: ``LOCAL_RANK``'s CUDA device
            when CUDA is available, else ``torch.device('cpu')`` (gloo processes).
        wrap_layer_names (sequence[str], optional): class names of the layers that
            become FSDP units (e.g. ``'Qwen2DecoderLayer'``, ``'LlamaDecoderLayer'``,
            ``'CLIPEncoderLayer'``, ``'SiglipEncoderLayer'``); ignored when
            ``auto_wrap_policy`` is given.
        **kwargs: ``MMFullyShardedDataParallel`` arguments.
    """

    def __init__(self, module: nn.Module, device_id=None, wrap_layer_names: Optional[Sequence[str]] = None,
                 **kwargs) -> None:
        if device_id is None or not torch.cuda.is_available():
            if torch.cuda.is_available():
                import os
                device_id = int(os.environ.get('LOCAL_RANK', 0))
            else:
                device_id = torch.device('cpu')
        if wrap_layer_names and kwargs.get('auto_wrap_policy') is None:
            present = {type(m).__name__ for m in module.modules()}
            missing = sorted(set(wrap_layer_names) - present)
            if missing:
                layers = sorted(n for n in present if 'Layer' in n)
                raise ValueError(f'LLMFullyShardedDataParallel.wrap_layer_names: {missing} are not '
                                 f'layer classes of the model; e.g. {layers}')
            kwargs['auto_wrap_policy'] = functools.partial(layer_names_wrap_policy,
                                                           layer_names=tuple(wrap_layer_names))
        super().__init__(module=module, device_id=device_id, **kwargs)
