"""Shims for the stack mmkd runs on. Each names the upstream problem it works around.

(mmengine's checkpoint types for ``torch.load(weights_only=True)`` and its http(s)
checkpoint scheme are made safe in :mod:`mmkd.utils.checkpoint`.)
"""
from __future__ import annotations

from .import_hooks import after_import

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


# Why an import hook and not a direct ``setattr`` where mmkd imports mmpretrain:
# * Most imports of mmpretrain/mmdet are not mmkd's: mmengine imports
#   ``mmdet.models`` / ``mmpretrain.models`` through the registries' ``locations``
#   (a config's ``default_scope``, ``type='mmdet.X'``, ``_scope_``, tools/train.py's
#   Runner), and users' scripts ``import mmdet.models`` after ``import mmkd`` (what
#   tests/test_utils/test_compat_transformers.py checks). mmkd's own places
#   (utils/model_builder.py's scope lookup, models/heads importing mmpretrain) see only
#   some of them, and whichever comes first decides: mmpretrain's BLIP/OFA/RAM modules
#   and mmdet's GLIP fusion import the names once, when they are first imported.
# * Setting the names eagerly needs ``transformers.modeling_utils`` imported, i.e. most
#   of transformers (several seconds) in every ``import mmkd``, CNN-only runs included;
#   ``import mmkd`` must not import transformers (the same test checks it).
# The hook is one-shot (it leaves ``sys.meta_path`` when it fires), adds only names the
# module lacks, each bound to transformers' own object, and changes no behaviour of
# transformers; on transformers <= 4.52 (4.51.3 here) it adds nothing.
def make_moved_transformers_names_importable() -> None:
    """Let mmpretrain 1.2.0 / mmdet 3.3.0 import on transformers >= 4.53; ``import mmkd``
    calls this.

    Adds the names of ``_MOVED_MODELING_UTILS_NAMES`` to ``transformers.modeling_utils``
    now if transformers is imported, else right after it is (transformers is not
    imported by this). Safe to call repeatedly.
    """
    after_import(_TRANSFORMERS_MODELING_UTILS, _add_moved_modeling_utils_names,
                  ready='PreTrainedModel')
