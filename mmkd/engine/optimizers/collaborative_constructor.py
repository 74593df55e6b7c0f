"""The optimizer-wrapper constructor of :class:`~mmkd.models.algorithms.CollaborativeDistill`.

One optimizer wrapper per student (HFD + BSD collaborative distillation, Zhu et al.,
ICCV 2023, arXiv:2307.12574).
"""
from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Optional

from mmengine.model import is_model_wrapper
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapperDict
from torch import nn

from mmkd.registry import OPTIM_WRAPPER_CONSTRUCTORS

# The students of CollaborativeDistill (its module constant STUDENTS; engine does not
# import models, and tests/test_engine/test_collaborative_constructor.py checks they agree).
STUDENTS = ('cnn', 'vit')

@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class CollaborativeOptimWrapperConstructor:
    """One optimizer wrapper per student of :class:`CollaborativeDistill`.

    Config::

        optim_wrapper = dict(
            constructor='mmkd.CollaborativeOptimWrapperConstructor',
            cnn=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01), paramwise_cfg=...),
            vit=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=6e-5), paramwise_cfg=...))

    Each wrapper gets student s's parameters plus ``connectors.<s>`` (built with
    mmengine's ``DefaultOptimWrapperConstructor``, so ``paramwise_cfg`` keys see the
    names ``student.backbone...`` / ``connectors...``). Every trainable parameter of
    the model must belong to exactly one student.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None) -> None:
        if paramwise_cfg is not None:
            raise ValueError('CollaborativeOptimWrapperConstructor: give paramwise_cfg inside '
                             'optim_wrapper.cnn / optim_wrapper.vit, not at the top level')
        cfg = dict(optim_wrapper_cfg)
        if set(cfg) != set(STUDENTS):
            raise KeyError(f'optim_wrapper must have exactly the keys {list(STUDENTS)} (plus '
                           f'constructor), got {sorted(cfg)}')
        for name, sub in cfg.items():
            if not isinstance(sub, dict) or 'optimizer' not in sub:
                raise KeyError(f'optim_wrapper.{name} must be a dict with an optimizer, got {sub!r}')
        self.cfg = cfg

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        if is_model_wrapper(model):
            model = model.module
        if not hasattr(model, 'owned_modules'):
            raise TypeError('CollaborativeOptimWrapperConstructor works with CollaborativeDistill, '
                            f'got {type(model).__name__}')
        owned = {name: model.owned_modules(name) for name in STUDENTS}
        seen = {}
        for name, module in owned.items():
            for param in module.parameters():
                if param.requires_grad:
                    seen.setdefault(id(param), []).append(name)
        shared = [names for names in seen.values() if len(names) > 1]
        if shared:
            raise ValueError('a parameter belongs to both students; the students must not share modules')
        orphans = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in seen]
        if orphans:
            raise ValueError(f'trainable parameters outside both students: {orphans[:5]}; put '
                             'learnable modules in connectors.<student>')
        wrappers = OrderedDict()
        for name in STUDENTS:
            sub = copy.deepcopy(self.cfg[name])
            paramwise = sub.pop('paramwise_cfg', None)
            sub.setdefault('type', 'OptimWrapper')
            wrappers[name] = DefaultOptimWrapperConstructor(sub, paramwise)(owned[name])
        return OptimWrapperDict(**wrappers)
