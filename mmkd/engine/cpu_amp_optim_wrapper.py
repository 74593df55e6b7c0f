"""Mixed precision on CPU: what ``tools/train.py --amp`` uses when there is no GPU.

mmengine's ``AmpOptimWrapper`` refuses to run without CUDA/NPU/MLU/MUSA. On CPU,
autocast supports bf16 (and fp16); bf16 has fp32's exponent range, so no loss
scaling is needed and the optimizer step is the plain one.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper
from torch import nn

from mmkd.registry import OPTIM_WRAPPERS

_DTYPES = {'bfloat16': torch.bfloat16, 'float16': torch.float16}


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """Optimizer wrapper whose forward context is ``torch.autocast('cpu', dtype)``.

    Args:
        dtype (str): 'bfloat16' (default) or 'float16'.
        **kwargs: the arguments of ``OptimWrapper`` (optimizer, clip_grad, ...).
    """

    def __init__(self, dtype: str = 'bfloat16', **kwargs) -> None:
        if dtype not in _DTYPES:
            raise ValueError(f'optim_wrapper.dtype={dtype!r}; valid for CPUAmpOptimWrapper: '
                             f'{sorted(_DTYPES)}')
        super().__init__(**kwargs)
        self.cast_dtype = _DTYPES[dtype]

    @contextmanager
    def optim_context(self, model: nn.Module):
        with super().optim_context(model), torch.autocast(device_type='cpu', dtype=self.cast_dtype):
            yield
