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


class _AfterImport:
    """One-shot import hook: run ``action(module)`` right after module ``fullname`` runs.

    Waiting for whoever imports the module keeps ``import mmkd`` fast: importing
    ``mmengine.runner.checkpoint`` pulls in mmengine's Runner (about a second),
    ``transformers.modeling_utils`` most of transformers (several seconds).
    """

    def __init__(self, fullname: str, action) -> None:
        self.fullname, self.action = fullname, action

    def find_spec(self, fullname, path, target=None):
        if fullname != self.fullname:
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
        action = self.action

        def exec_then_act(module):
            exec_module(module)
            action(module)

        spec.loader.exec_module = exec_then_act
        return spec


def _after_import(fullname: str, action, ready: str) -> None:
    """Run ``action(module)`` on module ``fullname`` now if it is imported (it has the
    attribute ``ready``), else right after it is (once; repeated calls add nothing)."""
    module = sys.modules.get(fullname)
    if module is not None and hasattr(module, ready):
        action(module)
    elif not any(isinstance(f, _AfterImport) and f.fullname == fullname for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport(fullname, action))


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
    _after_import(_MMENGINE_CHECKPOINT, _use_safe_http_loader, ready='CheckpointLoader')


# ------------------------------------------------------------------ transformers >= 4.53
_TRANSFORMERS_MODELING_UTILS = 'transformers.modeling_utils'

# Names that mmpretrain 1.2.0 and mmdet 3.3.0 import from ``transformers.modeling_utils``,
# which still had them in 4.51.3 and lacks them in 5.23.0 (GenerationMixin since 4.53),
# and where they live now. The importers:
#   GenerationMixin, PretrainedConfig: mmpretrain/models/multimodal/ofa/ofa_modules.py:15
#     (GenerationMixin left modeling_utils in 4.53: "cannot import name 'GenerationMixin'")
#   apply_chunking_to_forward, find_pruneable_heads_and_indices, prune_linear_layer:
#     mmpretrain/models/multimodal/blip/language_model.py:18 (its bare `except:` turns the
#     ImportError into `PreTrainedModel = None`, then line 123 fails with "TypeError:
#     NoneType takes no arguments"), mmpretrain/models/multimodal/ram/bert.py:17,
#     mmpretrain/models/multimodal/blip2/Qformer.py:16 (apply_chunking_to_forward only) and
#     mmdet/models/utils/vlfuse_helper.py:16 (GLIP; its `except ImportError` silently
#     leaves GLIP without BERT).
# mmpretrain.models imports these modules whenever transformers is installed, and mmdet
# imports mmpretrain.models (mmdet/models/data_preprocessors/reid_data_preprocessor.py:14,
# mmdet/models/reid/*.py), so without the names `import mmdet.models` fails. Remove this
# shim once mmpretrain (and mmdet) import them from their new places;
# tests/test_utils/test_compat_transformers.py fails when that is the case.
_MOVED_MODELING_UTILS_NAMES = (
    ('GenerationMixin', 'transformers.generation'),
    ('PretrainedConfig', 'transformers.configuration_utils'),
    ('apply_chunking_to_forward', 'transformers.pytorch_utils'),
    ('prune_linear_layer', 'transformers.pytorch_utils'),
    ('find_pruneable_heads_and_indices', 'transformers.pytorch_utils'),  # gone by 5.23
)


def _pruning_removed(*args, **kwargs):
    """Stands for ``find_pruneable_heads_and_indices``, which transformers 5 removed
    (absent from 5.23.0)."""
    raise NotImplementedError(
        'find_pruneable_heads_and_indices was removed in transformers 5; attention-head '
        "pruning (prune_heads) of mmpretrain 1.2.0's BLIP/RAM BERT needs transformers<5")


def _add_moved_modeling_utils_names(module) -> list:
    """Give ``transformers.modeling_utils`` the names it no longer exports; return them.

    Only names the module lacks are added, each bound to transformers' own object at its
    new place, so code that already imports them from there is unaffected and on
    transformers <= 4.52 nothing is added. No behaviour of transformers changes.
    """
    import importlib
    added = []
    for name, home in _MOVED_MODELING_UTILS_NAMES:
        if hasattr(module, name):
            continue
        value = getattr(importlib.import_module(home), name, None)
        if value is None and name == 'find_pruneable_heads_and_indices':
            value = _pruning_removed
        if value is not None:
            setattr(module, name, value)
            added.append(name)
    module.__mmkd_added_names__ = tuple(added)
    return added


def make_moved_transformers_names_importable() -> None:
    """Let mmpretrain 1.2.0 / mmdet 3.3.0 import on transformers >= 4.53; ``import mmkd``
    calls this.

    Adds the names of ``_MOVED_MODELING_UTILS_NAMES`` to ``transformers.modeling_utils``
    now if transformers is imported, else right after it is (transformers is not
    imported by this). Safe to call repeatedly.
    """
    _after_import(_TRANSFORMERS_MODELING_UTILS, _add_moved_modeling_utils_names,
                  ready='PreTrainedModel')
