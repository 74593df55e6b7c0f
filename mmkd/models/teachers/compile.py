"""Running a frozen teacher through ``torch.compile`` and in ``channels_last``.

``teacher_compile`` (off by default) compiles the teacher's forward with
``torch.compile`` in inference mode (``no_grad``; with inductor's ``freezing``, which
folds the frozen weights and BatchNorms into the compiled kernels). What is compiled
keeps every recorder working and the early exit exact:

* recorders are forward hooks on the teacher's submodules, and a hook raises
  :class:`~mmkd.models.recorders.EarlyExit` once the losses have what they need. Hooks
  that fire *inside* a compiled region would be traced (or broken into graph pieces),
  and an exception raised there would leave the compiled graph half-run. So only
  **the maximal submodules with no hooked module strictly inside them** are compiled:
  their own ``forward`` is replaced by the compiled one, while ``nn.Module.__call__``
  (the hooks of that module included) stays eager around it. A recorded module is
  therefore still compiled itself; its hook sees the compiled module's output; the
  ancestors of recorded modules (e.g. a ResNet's ``forward`` that loops over its
  stages) run eagerly and stop where the early exit stops them. Modules after the
  exit point never run, so they are never compiled (compilation is lazy).
* the compiled forwards are installed only while the teacher runs
  (:meth:`TeacherSet.forward_context`) and removed afterwards: nothing outlives the
  context, ``copy.deepcopy``/pickling of the algorithm never sees them, and a
  teacher moved to another device or dtype (:meth:`TeacherSet.apply`) is planned and
  compiled again.
* the plan is recomputed when the set of hooked modules changes (a recorder added
  or removed later).
* ``torch.compile`` of a bound method runs every unit through one wrapper frame of
  dynamo's, whose cache holds one entry per unit (and per input shape); its default
  limit of 8 entries would silently leave the units after the eighth eager. Inside the
  teacher forward context the limit is raised to fit the units
  (``torch._dynamo.config.patch``, undone on exit).

Recorders that patch class methods (``MethodOutputs``/``FunctionOutputs``) are not
forward hooks: a method called inside a compiled region is traced once and the
patch is not seen. Do not combine them with ``teacher_compile``.

``teacher_channels_last`` stores the teacher's 4-D weights in ``channels_last``
(NHWC) memory format; convolutions then run (and return) channels_last tensors.
``to_channels_last`` does the same for any module (a student).

``tools/benchmark/teacher_compile.py`` measures what either option gains (see
``docs/benchmarks.md``).
"""
from __future__ import annotations

import contextlib
from typing import Dict, List, Optional, Tuple, Union

import torch
from torch import nn

#: ``torch.compile`` arguments accepted in ``teacher_compile=dict(...)``; anything else
#: is an error naming the valid keys. ``freezing`` is inductor's option (folds the
#: frozen weights into the compiled graph; needs ``no_grad``, which every teacher
#: forward has).
COMPILE_KEYS = ('backend', 'mode', 'dynamic', 'fullgraph', 'freezing', 'options')
DEFAULT_COMPILE = dict(backend='inductor', mode=None, dynamic=None, fullgraph=False,
                       freezing=True)

_CONTAINERS = (nn.ModuleList, nn.ModuleDict, nn.ParameterList, nn.ParameterDict)


def to_channels_last(module: nn.Module) -> nn.Module:
    """Store every 4-D parameter and buffer of ``module`` in ``channels_last`` format.

    Unlike ``module.to(memory_format=torch.channels_last)`` this leaves 5-D weights
    (3-D convolutions) alone instead of failing on them. Later ``.to()``/``.cuda()``
    calls keep the format (they preserve strides).
    """
    def convert(t: torch.Tensor) -> torch.Tensor:
        if t.dim() == 4 and not t.is_meta:
            return t.contiguous(memory_format=torch.channels_last)
        return t
    return module._apply(convert)


def _hooked(module: nn.Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks)


def compile_units(root: nn.Module) -> List[Tuple[str, nn.Module]]:
    """The submodules of ``root`` whose ``forward`` may be compiled: ``(path, module)``.

    A unit is a maximal submodule with no hooked module strictly inside it (its own
    hooks run outside its forward, so they stay eager). ``root`` itself is never a
    unit (its forward takes data samples and a mode); containers (``ModuleList``,
    ``ModuleDict``) have no forward, so their children are considered instead;
    parameter-free leaves (activations, pooling) are left eager: compiling one alone
    gains nothing and costs a guard check per call.
    """
    inside: Dict[int, bool] = {}

    def hooked_inside(module: nn.Module) -> bool:  # a hooked module strictly below
        key = id(module)
        if key not in inside:
            inside[key] = any(_hooked(c) or hooked_inside(c) for c in module.children())
        return inside[key]

    units: List[Tuple[str, nn.Module]] = []

    def visit(module: nn.Module, prefix: str) -> None:
        for name, child in module.named_children():
            path = f'{prefix}{name}'
            if isinstance(child, _CONTAINERS) or hooked_inside(child):
                visit(child, path + '.')
            elif next(child.parameters(), None) is not None or next(child.children(), None) \
                    is not None:
                units.append((path, child))
    visit(root, '')
    return units


def _signature(root: nn.Module) -> Tuple:
    return tuple(id(m) for m in root.modules() if _hooked(m))


class TeacherCompile:
    """Validated ``teacher_compile`` / ``teacher_channels_last`` setting of a TeacherSet.

    Args:
        compile (bool | dict | None): ``None``/``False``: off (default). ``True``:
            ``torch.compile`` with :data:`DEFAULT_COMPILE`. A dict overrides those keys
            (``backend``, ``mode``, ``dynamic``, ``fullgraph``, ``freezing``, and
            ``options``: more inductor options).
        channels_last (bool): store the teacher's 4-D weights in ``channels_last``.
        key (str): config key named in errors.
    """

    def __init__(self, compile: Union[bool, dict, None] = None, channels_last: bool = False,
                 key: str = 'teacher_compile') -> None:
        if compile is None or compile is False:
            self.options: Optional[dict] = None
        elif compile is True:
            self.options = dict(DEFAULT_COMPILE)
        elif isinstance(compile, dict):
            bad = sorted(set(compile) - set(COMPILE_KEYS))
            if bad:
                raise ValueError(f'{key}: unknown key(s) {bad}; valid: {list(COMPILE_KEYS)}')
            self.options = dict(DEFAULT_COMPILE, **compile)
            if compile.get('mode') is not None:
                # torch.compile takes `mode` or `options`, not both ("Either mode or
                # options can be specified"); freezing is an inductor option.
                if 'freezing' not in compile:
                    self.options['freezing'] = None
                if self.options['freezing'] is not None or compile.get('options'):
                    raise ValueError(
                        f"{key}: mode={compile['mode']!r} cannot be combined with "
                        f"freezing={self.options['freezing']!r} or options (torch.compile "
                        "takes one of mode and options); drop mode, or set freezing=None "
                        'and no options')
        else:
            raise TypeError(f'{key}={compile!r} must be True, False, None or a dict of '
                            f'torch.compile arguments ({list(COMPILE_KEYS)})')
        if not isinstance(channels_last, bool):
            raise TypeError(f'teacher_channels_last={channels_last!r} must be a bool')
        self.channels_last = channels_last

    @property
    def enabled(self) -> bool:
        return self.options is not None

    def prepare(self, teacher: nn.Module) -> nn.Module:
        """Apply ``channels_last`` (after build, and after every move or cast)."""
        if self.channels_last:
            to_channels_last(teacher)
        return teacher

    def compile_fn(self, fn):
        """``torch.compile(fn, ...)`` with this setting's arguments."""
        opts = dict(self.options)
        options = dict(opts.pop('options', None) or {})
        freezing = opts.pop('freezing')
        if opts['backend'] == 'inductor' and freezing is not None:
            options.setdefault('freezing', bool(freezing))
        return torch.compile(fn, backend=opts['backend'], mode=opts['mode'],
                             dynamic=opts['dynamic'], fullgraph=opts['fullgraph'],
                             options=options or None)

    @staticmethod
    def limits(n_units: int):
        """A context raising dynamo's recompile limit to fit ``n_units`` compiled units
        (4 input shapes each, 8 more to spare); never lowers it."""
        import torch._dynamo
        config = torch._dynamo.config
        key = 'recompile_limit' if hasattr(config, 'recompile_limit') else 'cache_size_limit'
        return config.patch(**{key: max(getattr(config, key), 4 * n_units + 8)})

    def plan(self, teacher: nn.Module, cached: Optional['CompilePlan']) -> 'CompilePlan':
        """The teacher's compile plan; ``cached`` is reused while its hooks are the same."""
        signature = _signature(teacher)
        if cached is not None and cached.signature == signature:
            return cached
        units = [(path, module, self.compile_fn(module.forward))
                 for path, module in compile_units(teacher)]
        return CompilePlan(signature, units)

    def __repr__(self) -> str:
        return f'TeacherCompile({self.options!r}, channels_last={self.channels_last})'


class CompilePlan:
    """Compiled forwards of one teacher's units, installed only inside :meth:`installed`."""

    def __init__(self, signature: Tuple, units: List[Tuple[str, nn.Module, object]]) -> None:
        self.signature = signature
        self.units = units

    @property
    def paths(self) -> List[str]:
        return [path for path, _, _ in self.units]

    @contextlib.contextmanager
    def installed(self):
        done = []
        try:
            for _, module, compiled in self.units:
                module.forward = compiled  # an instance attribute, shadowing the class's
                done.append(module)
            yield self
        finally:
            for module in done:
                module.__dict__.pop('forward', None)
