"""Running a frozen teacher in reduced precision (bf16/fp16), on CPU or GPU.

Two modes:

* ``'autocast'``: weights stay fp32; the teacher forward runs under
  ``torch.autocast(device_type, dtype)``, so matmuls and convolutions run in the
  low-precision dtype while numerically sensitive ops stay fp32. Safe default.
* ``'cast'``: the teacher's parameters and buffers are stored in the low-precision
  dtype (half the teacher's memory) and its floating inputs are cast to it.

Either way the distiller casts every recorded teacher tensor back to fp32 before
connectors and losses run (``ConfigurableDistiller(compute_in_fp32=True)``), so only
the teacher forward itself is approximate.
"""
from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

PRECISIONS = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}
MODES = ('autocast', 'cast')


class TeacherPrecision:
    """Validated teacher precision setting shared by the distillation algorithms.

    Args:
        precision (str): 'fp32' (default, no change), 'bf16' or 'fp16'.
        mode (str): 'autocast' or 'cast' (see module docstring).
        key (str): config key named in errors.
    """

    def __init__(self, precision: str = 'fp32', mode: str = 'autocast',
                 key: str = 'teacher_precision') -> None:
        if precision not in PRECISIONS:
            raise ValueError(f'{key}={precision!r} is not a precision; valid: {sorted(PRECISIONS)}')
        if mode not in MODES:
            raise ValueError(f'{key}_mode={mode!r} is not valid; valid: {list(MODES)}')
        self.precision, self.mode = precision, mode
        self.dtype = PRECISIONS[precision]

    @property
    def reduced(self) -> bool:
        return self.precision != 'fp32'

    def prepare(self, teacher: nn.Module) -> nn.Module:
        """Cast the teacher's floating parameters/buffers in 'cast' mode."""
        if self.reduced and self.mode == 'cast':
            teacher.to(self.dtype)
        return teacher

    def follow_device(self, teacher: nn.Module, device: torch.device | str) -> nn.Module:
        """Move a hidden teacher to ``device`` if its parameters live elsewhere.

        A teacher held outside the module tree is not moved by strategies that move
        only the modules they wrap (mmengine's FSDP strategy relies on FSDP's
        ``device_id``, which walks the wrapped children only), so it follows the data
        instead; 'cast' mode is re-applied after the move.
        """
        first = next(teacher.parameters(), None)
        if first is not None and first.device != torch.device(device):
            teacher.to(device)
            self.prepare(teacher)
        return teacher

    def cast_inputs(self, inputs: Any) -> Any:
        """In 'cast' mode, cast floating tensors (also inside lists/tuples/dicts)."""
        if not (self.reduced and self.mode == 'cast'):
            return inputs
        if torch.is_tensor(inputs):
            return inputs.to(self.dtype) if inputs.is_floating_point() else inputs
        if isinstance(inputs, (list, tuple)):
            return type(inputs)(self.cast_inputs(x) for x in inputs)
        if isinstance(inputs, dict):
            return {k: self.cast_inputs(v) for k, v in inputs.items()}
        return inputs

    def context(self, device: torch.device | str):
        """Autocast context for the teacher forward ('autocast' mode), else a no-op.

        In 'cast' mode an enclosing autocast (the student's ``--amp``) is switched off
        for the teacher, whose weights already have the wanted dtype.
        """
        device_type = torch.device(device).type
        if not self.reduced:
            return contextlib.nullcontext()
        if self.mode == 'autocast':
            return torch.autocast(device_type=device_type, dtype=self.dtype)
        return torch.autocast(device_type=device_type, enabled=False)

    def __repr__(self) -> str:
        return f'TeacherPrecision({self.precision!r}, mode={self.mode!r})'


def first_device(inputs: Any, default: torch.device) -> torch.device:
    """Device of the first tensor found in ``inputs`` (nested lists/dicts), else ``default``."""
    if torch.is_tensor(inputs):
        return inputs.device
    if isinstance(inputs, (list, tuple)):
        for x in inputs:
            dev = first_device(x, None)
            if dev is not None:
                return dev
    if isinstance(inputs, dict):
        return first_device(list(inputs.values()), default)
    return default
