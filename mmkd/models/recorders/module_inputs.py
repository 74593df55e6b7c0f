"""Record the positional inputs of a submodule given by its path."""
from __future__ import annotations

from typing import Any

from torch import nn

from mmkd.registry import MODELS

from .module_outputs import ModuleOutputs


@MODELS.register_module()
class ModuleInputs(ModuleOutputs):
    """Record the positional inputs passed to ``model.<source>`` (a tuple per call).

    Example: ``dict(type='ModuleInputs', source='head.fc')`` records the pooled
    feature entering a classifier's last layer; use ``data_idx=0`` to get the tensor.
    """

    def _hook(self, module: nn.Module, inputs: Any, outputs: Any) -> None:
        self._record(inputs)
