"""The one place that builds, loads, freezes and hides the teachers of an algorithm.

Every distillation algorithm holds its frozen teachers in a :class:`TeacherSet`:

* built from an OpenMMLab model dict, ``dict(cfg_path=...)`` or any route of
  :func:`mmkd.utils.model_builder.build_task_model` (timm, transformers, open_clip);
* loaded through mmkd's safe loader (:func:`mmkd.utils.checkpoint.load_teacher_weights`,
  which logs the file, its sha256 prefix and the tensors matched);
* frozen (``requires_grad=False``) and always in eval mode;
* hidden from the algorithm's module tree: a ``TeacherSet`` is not an ``nn.Module``,
  so the teachers are absent from ``parameters()`` (the optimizer, DDP's buckets) and
  from ``state_dict()`` (every checkpoint). The algorithm forwards ``_apply``
  (``.to()``/``.cuda()``/``.half()``), ``_set_device`` and ``train()`` to it;
* run in the configured precision (:class:`TeacherPrecision`) under ``no_grad``,
  following the device of the data (:meth:`TeacherSet.ready`);
* optionally compiled with ``torch.compile`` and stored in ``channels_last``
  (:class:`~mmkd.models.teachers.compile.TeacherCompile`; off by default): the
  compiled forwards exist only inside :meth:`TeacherSet.forward_context`.

Teachers that are trained together with the student (MST-Distill's first stage) are
not frozen teachers and do not live here: the algorithm registers them as ordinary
submodules.

**Teachers that are not needed are not loaded.** Inside :func:`teachers_not_loaded`
(``tools/test.py`` uses it, and ``tools/train.py`` when the training set replays
cached teacher outputs), a ``TeacherSet`` builds each teacher's structure on the
``meta`` device (no memory, no random initialisation) and never reads its
checkpoint, so the algorithm's set-up (recorder hooks, module-path checks) still
works, the student and every learnable distillation module are built as usual, and
nothing of the teacher is computed. Running such a teacher raises an error that says
why it was not loaded.
"""
from __future__ import annotations

import contextlib
import contextvars
import warnings
from collections import OrderedDict
from typing import Dict, Iterator, Optional, Tuple

import torch
from torch import nn

from mmkd.utils.checkpoint import load_teacher_weights
from mmkd.utils.model_builder import build_task_model

from .compile import CompilePlan, TeacherCompile
from .precision import TeacherPrecision

_NOT_LOADED: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar(
    'mmkd_teachers_not_loaded', default=None)


@contextlib.contextmanager
def teachers_not_loaded(reason: str):
    """Inside this context, teachers are built as structure only and never loaded.

    Args:
        reason (str): why the teachers are not needed, e.g. ``'tools/test.py evaluates
            the student only'``; logged, and quoted if a teacher is run anyway.
    """
    token = _NOT_LOADED.set(reason)
    try:
        yield
    finally:
        _NOT_LOADED.reset(token)


def freeze(module: nn.Module) -> nn.Module:
    """Make ``module`` a constant: no grad, eval mode (BN/dropout frozen)."""
    module.eval()
    for param in module.parameters():
        param.requires_grad_(False)
    return module


def _log(msg: str, level: int = 20) -> None:
    from mmengine.logging import print_log
    print_log(msg, logger='current', level=level)


def build_teacher(cfg, ckpt: Optional[str] = None, *, key: str = 'teacher',
                  ckpt_key: Optional[str] = None, strict: bool = True, trusted: bool = False,
                  init_weights: bool = True, missing_ckpt_warning: Optional[str] = None,
                  structure_only_allowed: bool = True) -> Tuple[nn.Module, dict]:
    """Build one teacher and load its weights (not frozen yet); returns (model, info).

    Args:
        cfg: model dict, ``dict(cfg_path=...)`` or a built module.
        ckpt: checkpoint file or URL (``None``: the teacher keeps its initial weights).
        key / ckpt_key: the config keys named in errors and logs.
        strict / trusted: see :func:`mmkd.utils.checkpoint.load_teacher_weights`.
        init_weights: without ``ckpt``, run the model's OpenMMLab ``init_weights()``
            (its documented initialisation). Off for models that initialise themselves
            when built (transformers models, whose own ``init_weights`` would draw new
            random weights).
        missing_ckpt_warning: warned when ``ckpt`` is not given (``None``: silent).
        structure_only_allowed: False for a teacher whose weights are part of the
            model's own checkpoint (a co-trained teacher): it is always built for real.
    """
    ckpt_key = ckpt_key or f'{key}_ckpt'
    reason = _NOT_LOADED.get()
    if reason is not None and structure_only_allowed:
        return _build_structure_only(cfg, key, ckpt_key, ckpt, reason)
    model, info = build_task_model(cfg, key=key)
    if ckpt:
        load_teacher_weights(model, ckpt, key=ckpt_key, strict=strict, trusted=trusted)
    else:
        if init_weights and hasattr(model, 'init_weights'):
            model.init_weights()
        if missing_ckpt_warning:
            warnings.warn(missing_ckpt_warning, stacklevel=3)
    info['loaded'] = True
    return model, info


#: Factories that make a model's weights and buffers. Inside :class:`_LargeTensorsOnMeta`
#: their results are made on the meta device; other factories (``torch.linspace``,
#: ``torch.arange``, ``torch.tensor``) stay real, since constructors compute with them
#: (mmpretrain's ResNet and mmseg's MiT read drop-path rates with
#: ``torch.linspace(...)[i].item()``, which ``with torch.device('meta')`` breaks).
_FACTORIES = (torch.empty, torch.zeros, torch.ones, torch.full, torch.rand, torch.randn)
#: Single numbers stay real too.
_META_FROM_NUMEL = 2


def _requested_numel(args) -> Optional[int]:
    size = args[0] if len(args) == 1 and isinstance(args[0], (tuple, list, torch.Size)) else args
    try:
        numel = 1
        for dim in size:
            numel *= int(dim)
        return numel
    except (TypeError, ValueError):
        return None


class _LargeTensorsOnMeta(torch.overrides.TorchFunctionMode):
    """Make a model's weights and buffers on the meta device while it is built: no
    memory, and initialisers, which act in place, do nothing on them."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in _FACTORIES and kwargs.get('device') is None:
            size = (kwargs['size'], ) if 'size' in kwargs else args[:1] if func is torch.full else args
            numel = _requested_numel(size)
            if numel is not None and numel >= _META_FROM_NUMEL:
                kwargs['device'] = 'meta'
        return func(*args, **kwargs)


def _build_structure_only(cfg, key: str, ckpt_key: str, ckpt: Optional[str],
                          reason: str) -> Tuple[nn.Module, dict]:
    try:
        with _LargeTensorsOnMeta():
            model, info = build_task_model(cfg, key=key)
        where = 'on the meta device (no memory)'
    except Exception as err:  # noqa: BLE001 (a constructor that computes on its tensors)
        model, info = build_task_model(cfg, key=key)
        where = f'on the CPU (its constructor cannot run on the meta device: {type(err).__name__})'
    skipped = f'; {ckpt_key}={ckpt!r} is not read' if ckpt else ''
    _log(f'{key}: not loaded ({reason}): only its structure is built, {where}{skipped}')
    info['loaded'] = False
    info['not_loaded_reason'] = reason
    return model, info


class TeacherSet:
    """Named frozen teachers of one algorithm, hidden from its module tree.

    Args:
        precision (TeacherPrecision, optional): the precision every teacher of the set
            runs in (default fp32).
        owner (str): the algorithm's class name, for messages.
        compile (TeacherCompile, optional): ``torch.compile`` / ``channels_last``
            setting of every teacher of the set (default: neither).
    """

    def __init__(self, precision: Optional[TeacherPrecision] = None, owner: str = '',
                 compile: Optional[TeacherCompile] = None) -> None:
        self.precision = precision or TeacherPrecision()
        self.compile = compile or TeacherCompile()
        self.owner = owner
        self._models: 'OrderedDict[str, nn.Module]' = OrderedDict()
        self._info: Dict[str, dict] = {}
        # Compiled forwards per teacher, made at the first forward (the recorders'
        # hooks exist by then) and dropped when the teachers move or are copied.
        self._plans: Dict[str, CompilePlan] = {}

    # building ---------------------------------------------------------------------------
    def add(self, name: str, cfg, ckpt: Optional[str] = None, **kwargs) -> nn.Module:
        """Build, load, freeze and keep teacher ``name``; kwargs as :func:`build_teacher`."""
        if name in self._models:
            raise KeyError(f'{self.owner}: two teachers are called {name!r}')
        model, info = build_teacher(cfg, ckpt, **kwargs)
        self._models[name] = self.compile.prepare(self.precision.prepare(freeze(model))) \
            if info['loaded'] else freeze(model)
        self._info[name] = info
        return self._models[name]

    def info(self, name: str) -> dict:
        """``{'scope': ..., 'loaded': bool}`` of teacher ``name``."""
        return self._info[name]

    @property
    def loaded(self) -> bool:
        """False when the teachers were built as structure only (see module docstring)."""
        return all(info['loaded'] for info in self._info.values())

    # access -----------------------------------------------------------------------------
    def __getitem__(self, name: str) -> nn.Module:
        return self._models[name]

    def __contains__(self, name: str) -> bool:
        return name in self._models

    def __len__(self) -> int:
        return len(self._models)

    def __iter__(self) -> Iterator[str]:
        return iter(self._models)

    def items(self):
        return self._models.items()

    def values(self):
        return self._models.values()

    def as_dict(self) -> Dict[str, nn.Module]:
        return dict(self._models)

    def ready(self, name: str, device: torch.device | str) -> nn.Module:
        """Teacher ``name`` on ``device``, to be run now; refused if it was not loaded."""
        info = self._info[name]
        if not info['loaded']:
            raise RuntimeError(
                f'{self.owner}: the teacher {name!r} was not loaded ({info["not_loaded_reason"]}), '
                'but this step needs its forward. Cached training needs cached teacher outputs on '
                'every training sample (wrap the whole training set with CachedTeacherDataset); '
                'to train with the teacher online, remove the cache (cache_dir=None).')
        return self.precision.follow_device(self._models[name], device)

    def forward_context(self, device: torch.device | str):
        """``no_grad``, the precision's autocast and, with ``teacher_compile``, the
        compiled forwards: the context of every teacher forward."""
        stack = contextlib.ExitStack()
        stack.enter_context(torch.no_grad())
        stack.enter_context(self.precision.context(device))
        if self.compile.enabled:
            for name, model in self._models.items():
                if not self._info[name]['loaded']:
                    continue
                self._plans[name] = self.compile.plan(model, self._plans.get(name))
                stack.enter_context(self._plans[name].installed())
            stack.enter_context(self.compile.limits(
                sum(len(plan.units) for plan in self._plans.values())))
        return stack

    def compiled_paths(self, name: str) -> list:
        """Module paths of teacher ``name`` whose forward is compiled (empty before its
        first forward, or without ``teacher_compile``)."""
        plan = self._plans.get(name)
        return plan.paths if plan is not None else []

    # what the owning module forwards ------------------------------------------------------
    def apply(self, fn, *args, **kwargs) -> None:
        """The owner's ``_apply`` (``.to()``, ``.cuda()``, ``.half()``), then precision."""
        for name, model in self._models.items():
            if not self._info[name]['loaded']:
                continue  # structure only: nothing to move
            model._apply(fn, *args, **kwargs)
            self.precision.prepare(model)  # `.float()` must not undo 'cast'
            self.compile.prepare(model)
        self._plans.clear()  # frozen constants of the old tensors: compile again

    def set_device(self, device: torch.device) -> None:
        """The owner's ``_set_device``: teachers' own data preprocessors follow."""
        for name, model in self._models.items():
            if self._info[name]['loaded'] and hasattr(model, '_set_device'):
                model._set_device(device)

    def eval(self) -> None:
        """Teachers never leave eval mode, whatever the runner asks of the owner."""
        for model in self._models.values():
            model.eval()

    def __getstate__(self) -> dict:
        # A copy (mmengine's EMA, a pickle) recompiles for its own modules: the compiled
        # forwards are bound to these.
        state = dict(self.__dict__)
        state['_plans'] = {}
        return state

    def __repr__(self) -> str:
        extra = f', {self.compile!r}' if self.compile.enabled or self.compile.channels_last else ''
        return f'TeacherSet({list(self._models)}, {self.precision!r}{extra})'
