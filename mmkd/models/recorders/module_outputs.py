"""Record the outputs of a submodule given by its path."""
from __future__ import annotations

import difflib
from typing import Any, Optional

from torch import nn

from mmkd.registry import MODELS

from .base_recorder import BaseRecorder


def find_module(model: nn.Module, path: str, what: str = 'source') -> nn.Module:
    """Return ``model``'s submodule at ``path`` or raise naming the closest paths."""
    modules = dict(model.named_modules())
    if path in modules and path != '':
        return modules[path]
    names = [n for n in modules if n]
    close = difflib.get_close_matches(path, names, n=5, cutoff=0.5)
    # Also offer children of the deepest existing prefix: the usual mistake is one level.
    prefix = path.rsplit('.', 1)[0] if '.' in path else ''
    siblings = [n for n in names if n.startswith(prefix + '.') and n.count('.') == prefix.count('.') + 1] \
        if prefix in modules else [n for n in names if '.' not in n]
    hint = close or siblings[:10]
    raise ValueError(
        f'{what}={path!r}: {type(model).__name__} has no submodule {path!r}. '
        f'Closest existing module paths: {hint}')


@MODELS.register_module()
class ModuleOutputs(BaseRecorder):
    """Record what ``model.<source>`` returns (a forward hook).

    Example: ``dict(type='ModuleOutputs', source='neck')`` records the FPN tuple of a
    detector; ``data_idx`` in a loss mapping then picks one level.
    """

    def __init__(self, source: str) -> None:
        super().__init__(source)
        self._handle = None

    def prepare_from_model(self, model: Optional[nn.Module] = None) -> None:
        if model is None:
            raise ValueError(f'{type(self).__name__} needs the model to find {self.source!r}')
        module = find_module(model, self.source)
        if self._handle is not None:
            self._handle.remove()
        self._handle = self._register(module)

    def _register(self, module: nn.Module):
        return module.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, inputs: Any, outputs: Any) -> None:
        self._record(outputs)

    def remove(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
