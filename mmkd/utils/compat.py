"""Shims for the stack mmkd runs on. Each names the upstream problem it works around."""
from __future__ import annotations

import torch


def mmengine_checkpoint_globals() -> list:
    """Return the non-tensor types that mmengine 0.10.7 writes into its checkpoints.

    mmengine's ``Runner.save_checkpoint`` stores ``message_hub`` state holding
    ``HistoryBuffer`` objects, numpy scalars/arrays (log values, random states) and
    ``collections.OrderedDict``/``defaultdict``. torch>=2.6 loads with
    ``weights_only=True`` by default and refuses them ("Unsupported global: GLOBAL
    mmengine.logging.history_buffer.HistoryBuffer"). Only these data-only types are
    allowed; arbitrary pickled callables are still refused.
    """
    import collections

    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    allowed = [HistoryBuffer, collections.OrderedDict, collections.defaultdict]
    # numpy scalars and arrays are reconstructed through these functions/types.
    try:
        from numpy.core.multiarray import _reconstruct, scalar  # numpy<2 path
    except ImportError:  # pragma: no cover - numpy>=2 moved the module
        from numpy._core.multiarray import _reconstruct, scalar
    allowed += [_reconstruct, scalar, np.ndarray, np.dtype]
    # numpy>=1.25 pickles dtypes through their concrete classes (np.dtypes.Float64DType).
    dtypes_mod = getattr(np, 'dtypes', None)
    if dtypes_mod is not None:
        for name in dir(dtypes_mod):
            obj = getattr(dtypes_mod, name)
            if isinstance(obj, type) and name.endswith('DType'):
                allowed.append(obj)
    return allowed


def _history_buffer_getattr(obj, name):
    """A ``getattr`` that only resolves HistoryBuffer's statistics methods.

    mmengine's ``HistoryBuffer`` instances carry a ``statistics_methods`` dict of
    bound class functions, which pickle as ``getattr(HistoryBuffer, 'mean')`` etc.
    Allow-listing the real ``builtins.getattr`` would let a crafted pickle reach any
    attribute of any allowed object; this stand-in resolves exactly those names.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    if obj is HistoryBuffer and name in ('min', 'max', 'mean', 'current') or (
            obj is HistoryBuffer and name in getattr(HistoryBuffer, '_statistics_methods', {})):
        return getattr(obj, name)
    raise RuntimeError(f'checkpoint asked for getattr({obj!r}, {name!r}), which mmkd does '
                       'not allow while loading with weights_only=True')


def allow_mmengine_checkpoint_globals() -> None:
    """Allow-list mmengine's checkpoint types for ``torch.load(weights_only=True)``."""
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:  # torch<2.4: weights_only loading is opt-in and has no allow-list
        return
    add(mmengine_checkpoint_globals() + [(_history_buffer_getattr, 'builtins.getattr'),
                                         (_history_buffer_getattr, '__builtin__.getattr')])
