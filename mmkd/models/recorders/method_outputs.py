"""Record the return values of a method of a class, patched only while recording."""
from __future__ import annotations

import functools
import importlib
from typing import Any, Callable, Optional, Tuple

from torch import nn

from mmkd.registry import MODELS

from .base_recorder import BaseRecorder


def import_attr(path: str, what: str = 'source') -> Tuple[Any, str, Any]:
    """Resolve ``'pkg.mod.Class.method'`` / ``'pkg.mod.func'`` to (owner, name, attr)."""
    parts = path.split('.')
    for cut in range(len(parts) - 1, 0, -1):
        module_name = '.'.join(parts[:cut])
        try:
            owner = importlib.import_module(module_name)
        except ImportError:
            continue
        rest = parts[cut:]
        try:
            for name in rest[:-1]:
                owner = getattr(owner, name)
            attr = getattr(owner, rest[-1])
        except AttributeError:
            members = [m for m in dir(owner) if not m.startswith('_')]
            raise ValueError(
                f'{what}={path!r}: {owner!r} has no attribute {rest[-1]!r}; '
                f'available: {members[:20]}') from None
        return owner, rest[-1], attr
    raise ValueError(f'{what}={path!r}: no importable module in this path')


@MODELS.register_module()
class MethodOutputs(BaseRecorder):
    """Record what ``pkg.module.Class.method`` returns, for every instance.

    The method is replaced by a recording wrapper only between
    :meth:`start_recording` and :meth:`stop_recording` and restored afterwards, so
    nothing outlives the recording context. Prefer :class:`ModuleOutputs`; use this
    for methods other than ``forward`` (e.g.
    ``'mmdet.models.dense_heads.AnchorHead.forward_single'``).
    """

    def __init__(self, source: str) -> None:
        super().__init__(source)
        self._owner = None
        self._name: Optional[str] = None
        self._original: Optional[Callable] = None

    def prepare_from_model(self, model: Optional[nn.Module] = None) -> None:
        owner, name, attr = import_attr(self.source)
        if not callable(attr):
            raise ValueError(f'source={self.source!r} is not callable')
        self._owner, self._name = owner, name
        # Keep the raw attribute (staticmethod/classmethod objects included).
        self._original = owner.__dict__.get(name, attr) if isinstance(owner, type) else attr

    def _make_wrapper(self) -> Callable:
        original = getattr(self._owner, self._name)

        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            out = original(*args, **kwargs)
            self._record(out)
            return out

        return wrapper

    def start_recording(self) -> None:
        super().start_recording()
        if self._owner is None:
            self.prepare_from_model()
        setattr(self._owner, self._name, self._make_wrapper())

    def stop_recording(self) -> None:
        super().stop_recording()
        if self._owner is not None:
            setattr(self._owner, self._name, self._original)


@MODELS.register_module()
class FunctionOutputs(MethodOutputs):
    """Record what a module-level function returns, e.g. ``'mmpretrain.models.utils.foo'``.

    Only calls that look the function up through its module at call time are seen
    (``from x import f`` copies taken before recording are not patched).
    """
