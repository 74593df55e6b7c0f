"""Shims for the stack mmkd runs on. Each names the upstream problem it works around."""
from __future__ import annotations

import sys

import torch

_MMENGINE_CHECKPOINT = 'mmengine.runner.checkpoint'


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
    """Make mmengine's checkpoint loading safe; ``import mmkd`` calls this.

    Allow-lists mmengine's checkpoint types for ``torch.load(weights_only=True)``
    and routes mmengine's http(s) checkpoints through mmkd's safe loader
    (:func:`install_safe_url_checkpoint_loader`).
    """
    install_safe_url_checkpoint_loader()
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:  # torch<2.4: weights_only loading is opt-in and has no allow-list
        return
    add(mmengine_checkpoint_globals() + [(_history_buffer_getattr, 'builtins.getattr'),
                                         (_history_buffer_getattr, '__builtin__.getattr')])


def _use_safe_http_loader(module) -> None:
    """Point mmengine's http(s) scheme and its module-level ``load_from_http`` at mmkd's."""
    from .checkpoint import URL_PREFIXES, load_from_http_safe
    loader = module.CheckpointLoader
    if any(loader._schemes.get(p) is not load_from_http_safe for p in URL_PREFIXES):
        loader.register_scheme(prefixes=URL_PREFIXES, loader=load_from_http_safe, force=True)
    # open-mmlab://, mmcls:// and torchvision:// call the module-level name directly.
    module.load_from_http = load_from_http_safe


class _AfterMmengineCheckpointImport:
    """One-shot import hook: install the safe http(s) loader once mmengine's module runs.

    Importing ``mmengine.runner.checkpoint`` pulls in mmengine's Runner (about a second);
    waiting for whoever imports it keeps ``import mmkd`` fast.
    """

    def find_spec(self, fullname, path, target=None):
        if fullname != _MMENGINE_CHECKPOINT:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        for finder in sys.meta_path:
            spec = finder.find_spec(fullname, path, target) if hasattr(finder, 'find_spec') else None
            if spec is not None:
                break
        else:
            return None
        exec_module = getattr(spec.loader, 'exec_module', None)
        if exec_module is None:  # pragma: no cover - every loader of a .py file has it
            return spec

        def exec_then_install(module):
            exec_module(module)
            _use_safe_http_loader(module)

        spec.loader.exec_module = exec_then_install
        return spec


def install_safe_url_checkpoint_loader() -> None:
    """Load mmengine's ``http://`` / ``https://`` checkpoints with mmkd's safe loader.

    mmengine 0.10.7 registers ``load_from_http`` for these prefixes; it loads through
    ``torch.hub.load_state_dict_from_url(..., weights_only=False)``, so a malicious
    pickle at a ``load_from``/``--resume``/``Pretrained``/``open-mmlab://`` URL would
    run code. This registers :func:`mmkd.utils.checkpoint.load_from_http_safe` with
    ``CheckpointLoader.register_scheme(..., force=True)`` instead, now if mmengine's
    checkpoint module is already imported and otherwise right after it is. Safe to
    call repeatedly.
    """
    module = sys.modules.get(_MMENGINE_CHECKPOINT)
    if module is not None and hasattr(module, 'CheckpointLoader'):
        _use_safe_http_loader(module)
    elif not any(isinstance(f, _AfterMmengineCheckpointImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterMmengineCheckpointImport())
