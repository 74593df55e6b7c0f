"""Initialise named student modules from the (frozen) teacher, where shapes match.

This is the ``init_student=True`` of the official MGD and FGD code (yzd-v/MGD,
``det/mmdet/distillation/distillers/detection_distiller.py``): after the student's own
``init_weights()``, every entry of the teacher checkpoint outside ``backbone.`` (for a
RetinaNet: the neck and the head) is loaded into the student with mmcv's non-strict
``load_state_dict``, which skips (and only warns about) a tensor whose shape differs.
FGD and ACAM-KD call the same step the "inheriting strategy".

Here the modules are named explicitly (``['neck', 'bbox_head']``, or a mapping from
student to teacher names), the teacher is the built and loaded teacher model (so its
checkpoint is read once), and the outcome is counted: copied, skipped for shape,
skipped because the teacher has no such tensor, and teacher tensors left unused.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

#: The config key of :class:`~mmkd.models.algorithms.SingleTeacherDistill` that names
#: the modules; every error message starts with it.
CONFIG_KEY = 'init_student_from_teacher'
SHAPE_MISMATCH_MODES = ('skip', 'error')
_SPEC_KEYS = ('modules', 'on_shape_mismatch')

InitFromTeacherSpec = Union[str, Sequence[str], Dict]


@dataclass
class InitFromTeacherReport:
    """What :func:`init_student_from_teacher` did, tensor by tensor.

    Keys are the student's (or, for ``unused_teacher``, the teacher's) state-dict keys
    relative to the model passed in, e.g. ``'neck.fpn_convs.0.conv.weight'``.
    """

    modules: List[Tuple[str, str]] = field(default_factory=list)  # (student, teacher)
    copied: List[str] = field(default_factory=list)
    skipped_shape: List[Tuple[str, tuple, tuple]] = field(default_factory=list)  # key, S, T
    missing_in_teacher: List[str] = field(default_factory=list)
    unused_teacher: List[str] = field(default_factory=list)
    dtype_converted: List[str] = field(default_factory=list)

    @property
    def num_skipped(self) -> int:
        return len(self.skipped_shape) + len(self.missing_in_teacher)

    def line(self) -> str:
        """The one log line, e.g. ``init_student_from_teacher: neck, bbox_head <- teacher:
        42 tensors copied, 2 skipped (shape)``."""
        names = ', '.join(s if s == t else f'{s} (teacher {t})' for s, t in self.modules)
        text = (f'{CONFIG_KEY}: {names} <- teacher: {len(self.copied)} tensors copied, '
                f'{len(self.skipped_shape)} skipped (shape)')
        if self.missing_in_teacher:
            text += f', {len(self.missing_in_teacher)} skipped (not in the teacher)'
        if self.unused_teacher:
            text += f', {len(self.unused_teacher)} teacher tensors unused'
        if self.dtype_converted:
            text += f', {len(self.dtype_converted)} cast to the student dtype'
        return text


def _children(module: nn.Module) -> Dict[str, nn.Module]:
    # not named_children(): it hides a module registered under a second name
    return {name: child for name, child in module._modules.items() if child is not None}


def _top_level_names(model: nn.Module) -> List[str]:
    return list(_children(model))


def _submodule(model: nn.Module, path: str, who: str) -> nn.Module:
    """``model``'s module at dotted ``path``; an error names the key and valid names."""
    module = model
    walked: List[str] = []
    for part in path.split('.'):
        children = _children(module)
        if part not in children:
            valid = _top_level_names(model) if not walked else sorted(children)
            where = 'top-level modules' if not walked else f"children of '{'.'.join(walked)}'"
            raise KeyError(
                f'{CONFIG_KEY}: {path!r} is not a module of the {who} '
                f'({type(model).__name__}); valid {where}: {valid}')
        module = children[part]
        walked.append(part)
    return module


def parse_init_from_teacher(spec: Optional[InitFromTeacherSpec]
                            ) -> Optional[Tuple[Dict[str, str], str]]:
    """Normalise the config value into ``({student name: teacher name}, on_shape_mismatch)``.

    Accepted forms: ``'neck'``; ``['neck', 'bbox_head']``; ``dict(modules=[...] or
    {student: teacher}, on_shape_mismatch='skip' | 'error')``. ``None`` (or an empty
    list) means: do nothing.
    """
    if spec is None:
        return None
    on_shape_mismatch = 'skip'
    modules = spec
    if isinstance(spec, dict):
        unknown = sorted(set(spec) - set(_SPEC_KEYS))
        if unknown:
            raise KeyError(f'{CONFIG_KEY}: unknown keys {unknown}; valid keys: {list(_SPEC_KEYS)}')
        if 'modules' not in spec:
            raise KeyError(f"{CONFIG_KEY}: a dict needs 'modules' (a list of student module "
                           "names, or a dict student name -> teacher name), e.g. "
                           "dict(modules=['neck', 'bbox_head'])")
        modules = spec['modules']
        on_shape_mismatch = spec.get('on_shape_mismatch', 'skip')
        if on_shape_mismatch not in SHAPE_MISMATCH_MODES:
            raise ValueError(f'{CONFIG_KEY}.on_shape_mismatch={on_shape_mismatch!r}; valid: '
                             f'{SHAPE_MISMATCH_MODES}')
    if isinstance(modules, str):
        modules = [modules]
    if isinstance(modules, dict):
        mapping = dict(modules)
    elif isinstance(modules, (list, tuple)):
        mapping = {name: name for name in modules}
        if len(mapping) != len(modules):
            raise ValueError(f'{CONFIG_KEY}: a module is named twice in {list(modules)}')
    else:
        raise TypeError(f'{CONFIG_KEY}={spec!r}: give a module name, a list of names '
                        "(e.g. ['neck', 'bbox_head']) or dict(modules=..., on_shape_mismatch=...)")
    for student_name, teacher_name in mapping.items():
        if not (isinstance(student_name, str) and student_name
                and isinstance(teacher_name, str) and teacher_name):
            raise TypeError(f'{CONFIG_KEY}: module names must be non-empty strings, got '
                            f'{student_name!r} -> {teacher_name!r}')
    if not mapping:
        return None
    return mapping, on_shape_mismatch


def check_init_from_teacher(student: nn.Module, teacher: nn.Module,
                            spec: Optional[InitFromTeacherSpec]
                            ) -> Optional[Tuple[Dict[str, str], str]]:
    """Parse ``spec`` and check every named module exists in the student and the teacher
    (at build time, before anything is copied). Returns the parsed spec."""
    parsed = parse_init_from_teacher(spec)
    if parsed is None:
        return None
    mapping, _ = parsed
    names = list(mapping)
    for i, name in enumerate(names):
        for other in names[i + 1:]:
            if other.startswith(name + '.') or name.startswith(other + '.'):
                raise ValueError(f'{CONFIG_KEY}: {name!r} and {other!r} overlap; name '
                                 'each module once')
    for student_name, teacher_name in mapping.items():
        _submodule(student, student_name, 'student')
        _submodule(teacher, teacher_name, 'teacher')
    return parsed


@torch.no_grad()
def init_student_from_teacher(student: nn.Module,
                              teacher: nn.Module,
                              modules: InitFromTeacherSpec,
                              on_shape_mismatch: Optional[str] = None,
                              log: bool = True) -> InitFromTeacherReport:
    """Copy the teacher's tensors into the named student modules where shapes match.

    For each named pair, every entry of the student module's ``state_dict()``
    (parameters and persistent buffers such as BN statistics) is overwritten in place
    by the teacher entry of the same relative name when the shapes are equal. A shape
    mismatch is skipped and counted (``on_shape_mismatch='skip'``, the official
    mmcv behaviour) or raises (``'error'``); a student tensor the teacher lacks is
    skipped and counted. Values are cast to the student tensor's dtype and device.

    Args:
        student: the student model (e.g. a ``RetinaNet``).
        teacher: the teacher model, weights already loaded.
        modules: what :func:`parse_init_from_teacher` accepts, e.g. ``['neck', 'bbox_head']``.
        on_shape_mismatch: overrides the value given in ``modules`` (``'skip'`` by default).
        log: log the one-line summary (INFO) and the skipped keys (WARNING).

    Returns:
        InitFromTeacherReport: every copied and skipped tensor.

    Raises:
        KeyError: a named module is not in the student or the teacher (the message
            names the config key and the valid top-level modules).
        ValueError: a shape mismatch with ``on_shape_mismatch='error'``, or nothing
            could be copied at all (every tensor differs): the option would be a no-op.
    """
    mapping, mode = check_init_from_teacher(student, teacher, modules) or ({}, 'skip')
    if on_shape_mismatch is not None:
        if on_shape_mismatch not in SHAPE_MISMATCH_MODES:
            raise ValueError(f'{CONFIG_KEY}.on_shape_mismatch={on_shape_mismatch!r}; valid: '
                             f'{SHAPE_MISMATCH_MODES}')
        mode = on_shape_mismatch
    report = InitFromTeacherReport(modules=list(mapping.items()))
    for student_name, teacher_name in mapping.items():
        s_state = _submodule(student, student_name, 'student').state_dict(keep_vars=True)
        t_state = _submodule(teacher, teacher_name, 'teacher').state_dict(keep_vars=True)
        for key, s_tensor in s_state.items():
            full = f'{student_name}.{key}'
            t_tensor = t_state.get(key)
            if t_tensor is None:
                report.missing_in_teacher.append(full)
                continue
            if tuple(s_tensor.shape) != tuple(t_tensor.shape):
                if mode == 'error':
                    raise ValueError(
                        f'{CONFIG_KEY}: {full} has shape {tuple(s_tensor.shape)} in the student '
                        f'and {tuple(t_tensor.shape)} in the teacher ({teacher_name}.{key}); set '
                        f"{CONFIG_KEY}=dict(modules=..., on_shape_mismatch='skip') to skip it")
                report.skipped_shape.append((full, tuple(s_tensor.shape), tuple(t_tensor.shape)))
                continue
            if s_tensor.dtype != t_tensor.dtype:
                report.dtype_converted.append(full)
            s_tensor.copy_(t_tensor.detach())
            report.copied.append(full)
        report.unused_teacher += [f'{teacher_name}.{k}' for k in t_state if k not in s_state]
    if not report.copied:
        raise ValueError(
            f'{CONFIG_KEY}: nothing was copied into {[s for s, _ in report.modules]}: '
            f'{len(report.skipped_shape)} tensors differ in shape (e.g. '
            f'{report.skipped_shape[:2]}) and {len(report.missing_in_teacher)} are not in the '
            'teacher. The student and teacher modules are not the same architecture; remove '
            'the option or name modules whose shapes match')
    if log:
        _log(report)
    return report


def _log(report: InitFromTeacherReport) -> None:
    from mmengine.logging import print_log
    print_log(report.line(), logger='current', level=logging.INFO)
    if report.skipped_shape:
        shown = ', '.join(f'{k} {s} vs teacher {t}' for k, s, t in report.skipped_shape[:8])
        more = len(report.skipped_shape) - 8
        print_log(f'{CONFIG_KEY}: kept the student initialisation of {len(report.skipped_shape)} '
                  f'tensors whose shape differs from the teacher: {shown}'
                  + (f' and {more} more' if more > 0 else ''),
                  logger='current', level=logging.WARNING)
    if report.missing_in_teacher:
        print_log(f'{CONFIG_KEY}: the teacher has no tensor for {report.missing_in_teacher[:8]}'
                  + (' ...' if len(report.missing_in_teacher) > 8 else ''),
                  logger='current', level=logging.WARNING)
    if report.dtype_converted:
        print_log(f'{CONFIG_KEY}: {len(report.dtype_converted)} teacher tensors were stored in '
                  'another dtype (teacher_precision_mode=\'cast\'?) and were cast to the '
                  "student's: they carry the reduced precision's rounding",
                  logger='current', level=logging.WARNING)
