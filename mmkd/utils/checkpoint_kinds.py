"""What a checkpoint holds, and how it fits a model.

mmkd tells four kinds of checkpoint apart by their keys (after a DDP ``module.``
prefix is dropped):

* ``'distillation'``: an mmkd algorithm with one student, saved by a distillation
  run: the student under ``architecture.``, maybe ``distiller.*`` (connectors,
  learnable loss parts) and ``distillation_stopped``.
* ``'multi_student'``: an algorithm with several students (``CollaborativeDistill``):
  ``students.<name>.*``.
* ``'converted_student'``: the output of
  ``tools/model_converters/convert_kd_ckpt_to_student.py`` (a student's keys without
  prefix, ``meta['converted_from']``).
* ``'task_model'``: a plain task-model checkpoint (mmpretrain, mmdet, mmseg, ...).

:func:`fit_checkpoint` maps a checkpoint onto a model (the distillation model's
student, a plain task model, one of several students) and checks the student part
strictly; :func:`check_resumable` checks that a checkpoint is a training checkpoint
of the model being resumed. Both raise :class:`CheckpointMismatchError` naming the
key, the file, what it holds and what to pass instead. Nothing here knows the runner.
"""
from __future__ import annotations

import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from .checkpoint import TRUST_ENV, is_url, named, resolve_checkpoint_file, safe_torch_load, state_dict_of

STUDENT_PREFIX = 'architecture.'
STUDENTS_PREFIX = 'students.'
KINDS = ('distillation', 'multi_student', 'converted_student', 'task_model')


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit where it was given; the message says what to pass instead."""


def _strip_module(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}


def _some(keys, n: int = 5) -> str:
    keys = list(keys)
    return f'{keys[:n]}' + (f' and {len(keys) - n} more' if len(keys) > n else '')


@dataclass
class CheckpointInfo:
    """A loaded checkpoint and what it is.

    Attributes:
        path (str): the file (or URL) as given.
        key (str): the config key or argument it came from, named in errors.
        checkpoint (dict): the loaded object (a bare state dict is wrapped as
            ``{'state_dict': ...}``).
        state (dict): its state dict, ``module.`` prefixes dropped.
        kind (str): one of :data:`KINDS`.
        students (list): the student names of a ``'multi_student'`` checkpoint.
    """

    path: str
    key: str
    checkpoint: dict
    state: Dict[str, torch.Tensor]
    kind: str
    students: List[str] = field(default_factory=list)

    @property
    def meta(self) -> dict:
        meta = self.checkpoint.get('meta')
        return meta if isinstance(meta, dict) else {}

    @property
    def shown(self) -> str:
        return named(self.key, self.path)

    @property
    def is_training_checkpoint(self) -> bool:
        """Saved by an mmengine run, with what ``--resume`` needs (meta, message hub)."""
        return ('iter' in self.meta and 'epoch' in self.meta
                and 'message_hub' in self.checkpoint)

    def _saved_at(self) -> str:
        if 'iter' in self.meta:
            return f', saved at epoch {self.meta.get("epoch")}, iter {self.meta.get("iter")}'
        return ''

    def describe(self) -> str:
        """What it holds, in words, e.g. for an error message."""
        n = len(self.state)
        if self.kind == 'distillation':
            parts: Dict[str, int] = {}
            for k in self.state:
                top = f"{k.split('.', 1)[0]}." if '.' in k else k
                parts[top] = parts.get(top, 0) + 1
            shown = ', '.join(f"{c} under '{p}'" if p.endswith('.') else f"'{p}'"
                              for p, c in parts.items())
            return f'an mmkd distillation checkpoint ({n} tensors: {shown}{self._saved_at()})'
        if self.kind == 'multi_student':
            return (f'an mmkd checkpoint with {len(self.students)} students {self.students} '
                    f"({n} tensors under 'students.<name>.' and others{self._saved_at()})")
        first = next(iter(self.state), None)
        if self.kind == 'converted_student':
            return (f'a student converted by convert_kd_ckpt_to_student.py from '
                    f'{self.meta.get("converted_from")!r} ({n} tensors, e.g. {first!r}; no '
                    "'architecture.' prefix)")
        training = ' with training state' if self.is_training_checkpoint else ''
        return (f'a plain task-model checkpoint{training} ({n} tensors, e.g. {first!r}; no '
                f"'architecture.' or 'students.' prefix{self._saved_at()})")


def classify(state: Dict[str, torch.Tensor], meta: Optional[dict] = None) -> Tuple[str, List[str]]:
    """The kind of a state dict (see the module docstring) and its student names."""
    if any(k.startswith(STUDENT_PREFIX) for k in state):
        return 'distillation', []
    students = sorted({k.split('.')[1] for k in state
                       if k.startswith(STUDENTS_PREFIX) and k.count('.') >= 2})
    if students:
        return 'multi_student', students
    if isinstance(meta, dict) and meta.get('converted_from'):
        return 'converted_student', []
    return 'task_model', []


def trusted_by_env() -> bool:
    """Whether torch's ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` asks for full pickle loads."""
    return os.getenv(TRUST_ENV, '0').lower() in ('1', 'y', 'yes', 'true')


def read_checkpoint(path: str, key: str, map_location: Optional[str] = 'cpu',
                    trusted: Optional[bool] = None) -> CheckpointInfo:
    """Load ``path`` safely and tell what it holds; every error names ``key`` and the file.

    Args:
        path (str): local file or http(s) URL.
        key (str): ``load_from``, ``--resume``, ``checkpoint`` (tools/test.py), ...
        map_location (str, optional): as in :func:`torch.load`.
        trusted (bool, optional): full pickle load; default: torch's
            ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` (the opt-in for ``load_from`` and
            ``--resume``).

    Raises:
        FileNotFoundError, CheckpointFileError, UnsafeCheckpointError.
    """
    if trusted is None:
        trusted = trusted_by_env()
    if trusted:
        from mmengine.logging import print_log
        print_log(f'loading {named(key, path)} with a full pickle load ({TRUST_ENV} is set): only '
                  'do this for files you trust', logger='current', level=30)
    local = resolve_checkpoint_file(path)
    origin = path if is_url(path) else None
    ckpt = safe_torch_load(local, map_location=map_location, trusted=trusted, origin=origin,
                           key=key)
    state = _strip_module(state_dict_of(ckpt, named(key, local, origin)))
    if not (isinstance(ckpt, dict) and 'state_dict' in ckpt):
        ckpt = {'state_dict': ckpt}
    kind, students = classify(state, ckpt.get('meta'))
    return CheckpointInfo(path=path, key=key, checkpoint=ckpt, state=state, kind=kind,
                          students=students)


def student_slots(model: nn.Module) -> Dict[str, str]:
    """Where a model keeps its students: ``{name: state-dict prefix}``.

    ``{'architecture': 'architecture.'}`` for an mmkd algorithm with one student,
    ``{'cnn': 'students.cnn.', ...}`` for several, ``{}`` for a plain task model.
    """
    students = getattr(model, 'students', None)
    if isinstance(students, nn.ModuleDict):
        return {name: f'{STUDENTS_PREFIX}{name}.' for name in students}
    if isinstance(getattr(model, 'architecture', None), nn.Module):
        return {'architecture': STUDENT_PREFIX}
    return {}


def _model_kind(model: nn.Module) -> str:
    slots = student_slots(model)
    if not slots:
        return 'task_model'
    return 'distillation' if list(slots) == ['architecture'] else 'multi_student'


@dataclass
class FitResult:
    """What :func:`fit_checkpoint` found.

    Attributes:
        state (dict): the state dict to load into the model (keys of the model).
        target (str): the part of the model it goes to, in words.
        matched (int): tensors of that part found in the checkpoint (all of them).
        ignored (list): checkpoint keys outside the student part that the model lacks
            or holds in another shape (e.g. another config's connectors); not loaded.
        fresh (list): model keys outside the student part absent from the file (they
            keep their initial values, e.g. the connectors of a new distillation).
        partial (list): with ``strict=False``: student keys missing from the file, extra
            in it, or of another shape; not loaded.
    """

    state: Dict[str, torch.Tensor]
    target: str
    matched: int
    ignored: List[str]
    fresh: List[str]
    partial: List[str] = field(default_factory=list)

    def summary(self, info: CheckpointInfo) -> str:
        text = (f'{info.shown}: {info.describe()}; loaded into {self.target}: '
                f'{"" if self.partial else "all "}{self.matched} tensors matched')
        if self.partial:
            text += (f'; NOT loaded (non-strict): {len(self.partial)} tensors missing, extra '
                     f'or of another shape {_some(self.partial)}')
        if self.fresh:
            text += (f'; {len(self.fresh)} tensors outside the student are not in the file and '
                     f'keep their initial values {_some(self.fresh)}')
        if self.ignored:
            text += (f'; {len(self.ignored)} tensors of the file that this model lacks or holds '
                     f'in another shape were not loaded {_some(self.ignored)}')
        return text


def _pick(name: Optional[str], choices: List[str], info: CheckpointInfo, whose: str,
          student_flag: str) -> str:
    if name is None:
        raise CheckpointMismatchError(
            f'{info.shown} is {info.describe()}, and {whose} has several students {choices}: '
            f'say which one with {student_flag} NAME ({", ".join(choices)}).')
    if name not in choices:
        raise CheckpointMismatchError(
            f'{student_flag} {name!r} is not a student of {whose}; valid: {choices}')
    return name


#: The algorithms' persistent StopDistillHook decision: part of a run, not of a model.
RUN_STATE_KEY = 'distillation_stopped'


def fit_checkpoint(info: CheckpointInfo, model: nn.Module, student: Optional[str] = None,
                   student_flag: str = '--student', strict: bool = True,
                   strict_option: Optional[str] = None) -> FitResult:
    """Map ``info`` onto ``model`` and check the student part strictly.

    A plain or converted student given to a distillation model is loaded into its
    student (``architecture``, or ``students.<student>``); a distillation checkpoint
    given to a plain task model gives its student; a distillation checkpoint given to
    the distillation model is loaded as it is. The student part must match exactly
    (every tensor present, none extra, same shapes); tensors outside it (connectors,
    learnable loss parts) are loaded where they fit and reported otherwise.

    Args:
        info (CheckpointInfo): from :func:`read_checkpoint`.
        model (nn.Module): the model (unwrapped from DDP).
        student (str, optional): which student, where the model or the checkpoint has
            several (``CollaborativeDistill``).
        student_flag (str): how the caller's user names ``student`` (in errors).
        strict (bool): refuse any missing, extra or reshaped tensor of the student part
            (default). False: load the tensors that fit (fine-tuning from a model with
            another head) and report the others, but still refuse a file of which no
            tensor fits.
        strict_option (str, optional): the option that turns ``strict`` off, named in
            the error.

    Raises:
        CheckpointMismatchError: the student part does not fit, nothing fits, or a
            student must be named; the message names the key, the file, what it holds
            and what to pass instead.
    """
    own = model.state_dict()
    slots = student_slots(model)
    mkind = _model_kind(model)
    name = type(model).__name__
    ckind = 'multi_student' if info.kind == 'multi_student' else (
        'distillation' if info.kind == 'distillation' else 'task_model')
    if ckind == mkind:  # same layout: as it is
        src, dst = '', ''
        part = tuple(slots.values()) or ('', )
        target = (f'{name} as it is (student part {list(slots.values())} checked strictly)'
                  if slots else f'the model ({name})')
    else:
        if ckind == 'task_model':
            src = ''
        elif ckind == 'distillation':
            src = STUDENT_PREFIX
        else:
            src = f'{STUDENTS_PREFIX}{_pick(student, info.students, info, "the file", student_flag)}.'
        if mkind == 'task_model':
            dst, target = '', f'the model ({name})'
        elif mkind == 'distillation':
            dst, target = STUDENT_PREFIX, f"the student 'architecture' of {name}"
        else:
            picked = _pick(student, list(slots), info, f'this {name} model', student_flag)
            dst, target = slots[picked], f"the student 'students.{picked}' of {name}"
        part = (dst, )
    state = {dst + k[len(src):]: v for k, v in info.state.items() if k.startswith(src)}
    # load_from/--checkpoint starts a new run: the StopDistillHook decision of the run that
    # saved the file must not switch this run's distillation off (only --resume keeps it).
    state.pop(RUN_STATE_KEY, None)

    def in_part(k: str) -> bool:
        return any(k.startswith(p) for p in part)

    part_keys = [k for k in own if in_part(k)]
    missing = [k for k in part_keys if k not in state and not k.endswith('num_batches_tracked')]
    unexpected = [k for k in state if in_part(k) and k not in own]
    shapes = [f'{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}'
              for k, v in state.items()
              if k in own and in_part(k) and torch.is_tensor(v) and v.shape != own[k].shape]
    matched = len([k for k in part_keys if k in state]) - len(shapes)
    partial = []
    if not strict and matched > 0:
        partial = [k for k in missing] + [k for k in unexpected] + [
            k for k, v in state.items() if k in own and in_part(k) and torch.is_tensor(v)
            and v.shape != own[k].shape]
        state = {k: v for k, v in state.items()
                 if not (in_part(k) and (k not in own or (torch.is_tensor(v)
                                                          and v.shape != own[k].shape)))}
        missing, unexpected, shapes = [], [], []
    if missing or unexpected or shapes or matched <= 0:
        problems = []
        if missing:
            problems.append(f'{len(missing)} of its {len(part_keys)} tensors are not in the file '
                            f'{_some(missing)}')
        if unexpected:
            problems.append(f'{len(unexpected)} tensors of the file are not in it '
                            f'{_some(unexpected)}')
        if shapes:
            problems.append(f'{len(shapes)} have other shapes {_some(shapes, 3)}')
        if not problems:
            problems.append('no tensor of the file has a name of it')
        raise CheckpointMismatchError(
            f'{info.shown} is {info.describe()}, which does not fit {target}: '
            f'{"; ".join(problems)}. It is a checkpoint of another model (another depth, '
            'width, number of classes or config); pass a checkpoint of this config, of its '
            'student, or its converted student (tools/model_converters/'
            'convert_kd_ckpt_to_student.py). Nothing was loaded.'
            + (f' To load the tensors that fit on purpose (e.g. fine-tuning with another '
               f'number of classes) set {strict_option}.' if strict_option and matched > 0
               else ''))
    ignored = [k for k, v in state.items() if not in_part(k)
               and (k not in own or (torch.is_tensor(v) and v.shape != own[k].shape))]
    fresh = [k for k in own if not in_part(k) and k not in state]
    state = {k: v for k, v in state.items() if k not in ignored}
    return FitResult(state=state, target=target, matched=matched, ignored=ignored, fresh=fresh,
                     partial=partial)


#: ``distillation_stopped`` (StopDistillHook) was given to every algorithm on 2026-12-03;
#: a run of MultiTeacher/Collaborative/MultiGranularity/LlavaMoD saved before that has
#: none, and could not have stopped distillation (False, the initial value).
OPTIONAL_ON_RESUME = ('distillation_stopped',)


def check_resumable(info: CheckpointInfo, model: nn.Module) -> None:
    """Refuse a ``--resume`` checkpoint that is not a training checkpoint of ``model``.

    ``--resume`` continues a run: it needs the run's own checkpoint (weights of the
    whole model, optimizer, schedulers, message hub, iteration). Everything else is
    refused with what the file holds and what to pass instead (``load_from`` to start
    from weights).

    Raises:
        CheckpointMismatchError: the file holds no training state, holds another kind of
            model (e.g. a plain student for a distillation config) or another config's
            model.
    """
    name = type(model).__name__
    mkind = _model_kind(model)
    instead = (f'To start a new run from its weights pass `--cfg-options load_from={info.path}` '
               'instead (without --resume)')
    if mkind == 'distillation':
        instead += (": a plain or converted student is loaded into the student 'architecture' "
                    'strictly, a distillation checkpoint as it is')
    instead += '.'
    ckind = 'task_model' if info.kind in ('task_model', 'converted_student') else info.kind
    if ckind != mkind:
        runs = {'task_model': 'a plain task-model run (or by convert_kd_ckpt_to_student.py)',
                'distillation': 'a distillation run with one student',
                'multi_student': 'a run with several students'}[ckind]
        raise CheckpointMismatchError(
            f'{info.shown} is {info.describe()}, not a checkpoint of this {name} run: it was '
            f'saved by {runs}, and resuming it would leave this model with random weights. '
            f'--resume only continues a run of this config from its own checkpoint '
            f'(work_dirs/NAME/iter_N.pth). {instead}')
    if not info.is_training_checkpoint:
        lacks = [k for k in ('meta', 'message_hub', 'optimizer') if k not in info.checkpoint]
        raise CheckpointMismatchError(
            f'{info.shown} is {info.describe()} and holds weights only (no '
            f'{"/".join(repr(k) for k in lacks) or "iteration in its meta"}), so there is no run to '
            f'resume. {instead}')
    own = model.state_dict()
    # Buffers later versions added to algorithms that older checkpoints lack; resuming
    # leaves them at their initial value, which is what those runs had.
    missing = [k for k in own if k not in info.state and k not in OPTIONAL_ON_RESUME]
    unexpected = [k for k in info.state if k not in own]
    shapes = [f'{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}'
              for k, v in info.state.items()
              if k in own and torch.is_tensor(v) and v.shape != own[k].shape]
    if missing or unexpected or shapes:
        problems = [text for text, keys in (
            (f'{len(missing)} tensors of this model are not in the file {_some(missing)}', missing),
            (f'{len(unexpected)} tensors of the file are not in this model {_some(unexpected)}',
             unexpected),
            (f'{len(shapes)} have other shapes {_some(shapes, 3)}', shapes)) if keys]
        raise CheckpointMismatchError(
            f'{info.shown} is {info.describe()} of another config: {"; ".join(problems)}. '
            f'--resume only continues a run of this config (same model, distiller and '
            f'optimizer). {instead}')


def optimizer_group_sizes(optim_state: object) -> object:
    """Parameter counts per group of an optimizer state dict (or a dict of them)."""
    if isinstance(optim_state, dict) and 'param_groups' in optim_state:
        return [len(g.get('params', [])) for g in optim_state['param_groups']]
    if isinstance(optim_state, dict):
        return {k: optimizer_group_sizes(v) for k, v in optim_state.items()}
    return None


def abs_path(path: str) -> str:
    """How served checkpoints are keyed: absolute, user-expanded."""
    return osp.abspath(osp.expanduser(path))
