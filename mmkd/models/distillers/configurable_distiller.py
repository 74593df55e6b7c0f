"""Turn recorded student/teacher tensors into distillation losses, all from config."""
from __future__ import annotations

import contextlib
import inspect
from typing import Any, Dict, List, Optional

import torch
from torch import nn

from mmkd.registry import MODELS

from ..recorders import BaseRecorder, RecorderManager

_MAPPING_KEYS = {'from_student', 'from_model', 'recorder', 'record_idx', 'data_idx', 'connector',
                 'from_data', 'value'}
#: The two sides a named model belongs to: ``'teacher.<name>'``, ``'student.<name>'``.
_SIDES = ('student', 'teacher')


class GivenTensors(BaseRecorder):
    """A recorder the algorithm fills itself, with :meth:`ConfigurableDistiller.give`.

    For tensors no hook can capture: a forward's return value, or one teacher run
    several times (MST-Distill's masked teachers). Each :meth:`give` is one call
    (``record_idx``), as if the source had run; the distiller's ``reset`` empties it.
    """

    def __init__(self, source: str = 'given by the algorithm') -> None:
        super().__init__(source)

    def give(self, value: Any) -> None:
        self.data_buffer.append(value)


MODELS.register_module('GivenTensors', module=GivenTensors)


def _data_field(data_samples: Optional[List[Any]], field: str, where: str) -> torch.Tensor:
    """Stack ``field`` (e.g. 'gt_label', 'gt_sem_seg') over the batch's data samples."""
    if not data_samples:
        raise ValueError(f'{where}: from_data={field!r} needs data samples, but the '
                         'forward received none')
    values = []
    for sample in data_samples:
        value = getattr(sample, field, None)
        if value is None:
            raise ValueError(f'{where}: from_data={field!r} but the data samples have no '
                             f'{field!r}; they have: {sorted(sample.keys())}')
        # mmseg's PixelData keeps the tensor in `.data`
        if hasattr(value, 'data') and not isinstance(value, torch.Tensor):
            value = value.data
        values.append(torch.as_tensor(value))
    if values[0].dim() == 0 or (values[0].dim() == 1 and values[0].numel() == 1):
        return torch.stack([v.reshape(()) for v in values])
    return torch.stack(values)


@contextlib.contextmanager
def _autocast_off():
    """Disable any enclosing autocast (CPU and, when present, CUDA)."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.autocast(device_type='cpu', enabled=False))
        if torch.cuda.is_available():
            stack.enter_context(torch.autocast(device_type='cuda', enabled=False))
        yield


def source_model(source: Dict) -> Optional[str]:
    """The model a mapping source reads: 'student', 'teacher', 'teacher.<name>', ...

    ``from_student=True/False`` is ``'student'``/``'teacher'``; None for ``from_data``
    and ``value``.
    """
    if 'from_data' in source or 'value' in source:
        return None
    if 'from_model' in source:
        return source['from_model']
    return 'student' if source.get('from_student', True) else 'teacher'


def teacher_source_key(source: Dict) -> str:
    """``'recorder:record_idx:data_idx'`` (the one teacher), or with a named teacher's
    ``'teacher.<name>/'`` in front."""
    data_idx = source.get('data_idx')
    model = source_model(source)
    prefix = '' if model in (None, 'teacher') else f'{model}/'
    return (f"{prefix}{source['recorder']}:{source.get('record_idx', 0)}:"
            f"{'' if data_idx is None else data_idx}")


def parse_teacher_source_key(key: str):
    """``(recorder, record_idx, data_idx)`` of a :func:`teacher_source_key` (the recorder
    keeps a named teacher's ``'teacher.<name>/'`` prefix)."""
    name, record_idx, data_idx = key.rsplit(':', 2)
    return name, int(record_idx), (int(data_idx) if data_idx != '' else None)


def _recorders_key(model: str) -> str:
    """The config key declaring ``model``'s recorders."""
    if '.' not in model:
        return f'{model}_recorders'
    side, name = model.split('.', 1)
    return f'named_{side}_recorders.{name}'


def _split_model(name: str):
    """``'teacher.mm/logits'`` -> ``('teacher.mm', 'logits')``; ``'fpn'`` -> ``('teacher', 'fpn')``."""
    if '/' in name:
        model, recorder = name.split('/', 1)
        return model, recorder
    return 'teacher', name


@MODELS.register_module()
class ConfigurableDistiller(nn.Module):
    """The default distiller: recorders -> (connectors) -> losses, named in a config.

    Args:
        student_recorders (dict): name -> recorder config, prepared on the student.
        teacher_recorders (dict): name -> recorder config, prepared on the teacher(s).
        connectors (dict): name -> connector config (learnable, trained with the
            student and saved in checkpoints).
        distill_losses (dict): name -> loss config. Every loss name is logged as
            ``distill.<name>``; it should contain 'loss' so mmengine sums it.
        loss_forward_mappings (dict): loss name -> {forward argument -> source}. A
            source is ``dict(from_student=bool, recorder=str, record_idx=0,
            data_idx=None, connector=None)``, the same with
            ``from_model='teacher.<name>'`` / ``'student.<name>'`` (a named model;
            ``'teacher'`` / ``'student'`` are the unnamed ones, i.e.
            ``from_student=False`` / ``True``) instead of ``from_student``, or
            ``dict(from_data='gt_label')`` (a field of the batch's data samples,
            e.g. labels for DKD), or ``dict(value=...)`` (a constant argument, e.g.
            ``return_parts=dict(value=True)``). A loss that returns a dict of parts
            is logged as ``distill.<name>_<part>``, one key per part.
        compute_in_fp32 (bool): cast every recorded floating tensor to fp32 and run
            connectors and losses with autocast off (default True), so a bf16/fp16
            teacher or a student under ``--amp`` does not make the losses approximate.
        named_teacher_recorders (dict): teacher name -> {recorder name -> recorder
            config}: the recorders of ``'teacher.<name>'`` (several teachers).
        named_student_recorders (dict): student name -> {recorder name -> recorder
            config}: the recorders of ``'student.<name>'`` (several students).

    Every name is validated when the algorithm is built: undeclared recorders or
    connectors, loss arguments the loss does not take and missing required ones
    raise errors that name the key and the valid choices.
    """

    def __init__(self,
                 student_recorders: Optional[Dict] = None,
                 teacher_recorders: Optional[Dict] = None,
                 connectors: Optional[Dict] = None,
                 distill_losses: Optional[Dict] = None,
                 loss_forward_mappings: Optional[Dict] = None,
                 compute_in_fp32: bool = True,
                 named_teacher_recorders: Optional[Dict[str, Dict]] = None,
                 named_student_recorders: Optional[Dict[str, Dict]] = None) -> None:
        super().__init__()
        self.compute_in_fp32 = compute_in_fp32
        self.student_recorders = RecorderManager(student_recorders, side='student')
        self.teacher_recorders = RecorderManager(teacher_recorders, side='teacher')
        # 'student', 'teacher', then 'teacher.<name>' / 'student.<name>' in config order.
        self.recorder_managers: Dict[str, RecorderManager] = {
            'student': self.student_recorders, 'teacher': self.teacher_recorders}
        for side, named in (('teacher', named_teacher_recorders),
                            ('student', named_student_recorders)):
            key = f'named_{side}_recorders'
            if named is None:
                continue
            if not isinstance(named, dict):
                raise TypeError(f'{key} must be a dict: {side} name -> dict(recorder name -> '
                                f'recorder config), got {named!r}')
            for name, recorders in named.items():
                if not isinstance(name, str) or not name or '.' in name or '/' in name:
                    raise KeyError(f'{key}: {name!r} is not a valid {side} name (a non-empty '
                                   "string without '.' or '/')")
                if recorders is not None and not isinstance(recorders, dict):
                    raise TypeError(f'{key}.{name} must be a dict: recorder name -> recorder '
                                    f'config, got {recorders!r}')
                # errors name the config key: named_<side>_recorders.<name>.<recorder>
                self.recorder_managers[f'{side}.{name}'] = RecorderManager(
                    recorders, side=f'{side}.{name}', key=f'{key}.{name}')
        self.connectors = nn.ModuleDict()
        for name, cfg in (connectors or {}).items():
            self.connectors[name] = self._build('connectors', name, cfg)
        self.distill_losses = nn.ModuleDict()
        for name, cfg in (distill_losses or {}).items():
            self.distill_losses[name] = self._build('distill_losses', name, cfg)
        self.loss_forward_mappings = dict(loss_forward_mappings or {})
        # Multiplied into each loss; DistillLossWeightHook schedules it. Kept out of
        # the state dict on purpose: the hook recomputes it from the iteration.
        self.loss_weight_scale = 1.0
        self._checked_shapes = False
        self._check_mappings()

    # Building and validation ----------------------------------------------------
    @staticmethod
    def _build(group: str, name: str, cfg: Any) -> nn.Module:
        if isinstance(cfg, nn.Module):
            return cfg
        if not isinstance(cfg, dict) or 'type' not in cfg:
            raise TypeError(f'{group}.{name} must be a dict with a "type" key, got {cfg!r}')
        cls = MODELS.get(cfg['type']) if isinstance(cfg['type'], str) else cfg['type']
        if cls is None:
            raise KeyError(f"{group}.{name}.type={cfg['type']!r} is not registered in mmkd; "
                           f'registered losses/connectors include: '
                           f'{sorted(k for k in MODELS.module_dict)[:40]}')
        params = inspect.signature(cls.__init__).parameters
        takes_kwargs = any(p.kind == p.VAR_KEYWORD for p in params.values())
        valid = [p for p in params if p not in ('self', 'args', 'kwargs')]
        for key in cfg:
            if key not in ('type', '_scope_') and key not in params and not takes_kwargs:
                raise TypeError(f'{group}.{name}: {cls.__name__} takes no argument {key!r}; '
                                f'valid arguments: {valid}')
        try:
            return MODELS.build(cfg)
        except TypeError as err:
            raise TypeError(f'{group}.{name}: {err}') from None

    def _check_mappings(self) -> None:
        for loss_name in self.loss_forward_mappings:
            if loss_name not in self.distill_losses:
                raise KeyError(f'loss_forward_mappings.{loss_name}: no such loss in '
                               f'distill_losses; declared: {sorted(self.distill_losses)}')
        for loss_name, loss in self.distill_losses.items():
            if loss_name not in self.loss_forward_mappings:
                raise KeyError(f'distill_losses.{loss_name} has no entry in '
                               'loss_forward_mappings: say where its inputs come from')
            mapping = self.loss_forward_mappings[loss_name]
            params = inspect.signature(loss.forward).parameters
            names = [p for p in params if p != 'self']
            required = [p for p, v in params.items()
                        if v.default is inspect.Parameter.empty
                        and v.kind in (v.POSITIONAL_OR_KEYWORD, v.KEYWORD_ONLY)]
            for arg, source in mapping.items():
                where = f'loss_forward_mappings.{loss_name}.{arg}'
                if arg not in params:
                    raise TypeError(f'{where}: {type(loss).__name__}.forward takes no argument '
                                    f'{arg!r}; valid arguments: {names}')
                if not isinstance(source, dict):
                    raise TypeError(f'{where} must be a dict, got {source!r}')
                unknown = set(source) - _MAPPING_KEYS
                if unknown:
                    raise KeyError(f'{where}: unknown keys {sorted(unknown)}; valid: '
                                   f'{sorted(_MAPPING_KEYS)}')
                if 'value' in source and len(source) != 1:
                    raise KeyError(f"{where}: 'value' (a constant) stands alone, got the keys "
                                   f'{sorted(source)}')
                if 'from_data' in source or 'value' in source:
                    continue
                if 'from_student' in source and 'from_model' in source:
                    raise KeyError(f"{where}: give 'from_student' or 'from_model', not both")
                if ('from_student' not in source and 'from_model' not in source) \
                        or 'recorder' not in source:
                    raise KeyError(f"{where} needs 'from_student' (or 'from_model') and "
                                   "'recorder' (or 'from_data')")
                manager = self.manager(source_model(source), f'{where}.from_model')
                if source['recorder'] not in manager.recorders:
                    raise KeyError(f"{where}.recorder={source['recorder']!r} is not declared in "
                                   f'{_recorders_key(source_model(source))}; declared: '
                                   f'{sorted(manager.recorders)}')
                connector = source.get('connector')
                if connector is not None and connector not in self.connectors:
                    raise KeyError(f'{where}.connector={connector!r} is not declared in '
                                   f'connectors; declared: {sorted(self.connectors)}')
            missing = [p for p in required if p not in mapping]
            if missing:
                raise KeyError(f'loss_forward_mappings.{loss_name} lacks required '
                               f'argument(s) {missing} of {type(loss).__name__}.forward')

    @property
    def models(self) -> List[str]:
        """The model names a mapping may read (``from_model``)."""
        return list(self.recorder_managers)

    def manager(self, model: str, where: str = 'from_model') -> RecorderManager:
        """The recorders of ``model`` ('student', 'teacher', 'teacher.<name>', ...)."""
        if model not in self.recorder_managers:
            raise KeyError(f'{where}={model!r} is not a model of this distiller; valid: '
                           f'{self.models} (name more with named_teacher_recorders / '
                           'named_student_recorders)')
        return self.recorder_managers[model]

    def give(self, model: str, recorder: str, value: Any) -> None:
        """Hand ``value`` to the ``GivenTensors`` recorder ``recorder`` of ``model``."""
        rec = self.manager(model, 'give').get_recorder(recorder)
        if not isinstance(rec, GivenTensors):
            raise TypeError(f'give({model!r}, {recorder!r}): that recorder is a '
                            f'{type(rec).__name__}, which records by itself; only '
                            'GivenTensors recorders are given values')
        rec.give(value)

    def reset(self) -> None:
        """Empty every recorder of every model."""
        for manager in self.recorder_managers.values():
            manager.reset()

    def teacher_record_needs(self, model: str = 'teacher') -> Dict[str, Optional[int]]:
        """Recorder name of ``model`` (default the one teacher) -> calls the losses read
        (None: a call from the end)."""
        needs: Dict[str, Optional[int]] = {}
        for mapping in self.loss_forward_mappings.values():
            for source in mapping.values():
                if source_model(source) != model:
                    continue
                idx = source.get('record_idx', 0)
                name = source['recorder']
                count = None if idx < 0 else idx + 1
                if count is None or (name in needs and needs[name] is None):
                    needs[name] = None
                else:
                    needs[name] = max(needs.get(name, 0), count)
        return needs

    def teacher_sources(self) -> List[str]:
        """Keys ``'recorder:record_idx:data_idx'`` of every teacher tensor a loss reads.

        These are what a teacher-output cache stores (``tools/cache_teacher.py``).
        """
        keys = []
        for mapping in self.loss_forward_mappings.values():
            for source in mapping.values():
                model = source_model(source)
                if model is None or not (model == 'teacher' or model.startswith('teacher.')):
                    continue
                key = teacher_source_key(source)
                if key not in keys:
                    keys.append(key)
        return keys

    def read_teacher_sources(self) -> Dict[str, torch.Tensor]:
        """The recorded teacher tensors of this step, by :meth:`teacher_sources` key."""
        out = {}
        for key in self.teacher_sources():
            name, record_idx, data_idx = parse_teacher_source_key(key)
            model, name = _split_model(name)
            recorder = self.manager(model).get_recorder(name)
            out[key] = recorder.get_record_data(record_idx, data_idx)
        return out

    def inject_teacher_sources(self, values: Dict[str, torch.Tensor]) -> None:
        """Fill the teacher recorders from cached tensors instead of a teacher forward."""
        expected = self.teacher_sources()
        missing = [k for k in expected if k not in values]
        if missing:
            raise KeyError(f'the teacher cache lacks {missing}; it holds {sorted(values)}. '
                           'Rebuild it with tools/cache_teacher.py for this config.')
        for model, manager in self.recorder_managers.items():
            if model == 'teacher' or model.startswith('teacher.'):
                manager.reset()
        for key in expected:
            name, record_idx, data_idx = parse_teacher_source_key(key)
            model, name = _split_model(name)
            buffer = self.manager(model).get_recorder(name).data_buffer
            while len(buffer) <= record_idx:
                buffer.append(None)
            if data_idx is None:
                buffer[record_idx] = values[key]
            else:
                slot = buffer[record_idx]
                slot = list(slot) if isinstance(slot, (list, tuple)) else []
                while len(slot) <= data_idx:
                    slot.append(None)
                slot[data_idx] = values[key]
                buffer[record_idx] = slot

    def prepare_from_student(self, student: nn.Module, name: Optional[str] = None) -> None:
        """Prepare the student's recorders (``name``: those of ``'student.<name>'``)."""
        self.manager('student' if name is None else f'student.{name}',
                     'prepare_from_student').prepare_from_model(student)

    def prepare_from_teacher(self, teacher: nn.Module, name: Optional[str] = None) -> None:
        """Prepare the teacher's recorders (``name``: those of ``'teacher.<name>'``)."""
        self.manager('teacher' if name is None else f'teacher.{name}',
                     'prepare_from_teacher').prepare_from_model(teacher)

    # Computing --------------------------------------------------------------------
    def get_record(self, source: Dict, data_samples: Optional[List[Any]] = None,
                   where: str = '') -> Any:
        if 'from_data' in source:
            return _data_field(data_samples, source['from_data'], where)
        if 'value' in source:
            return source['value']
        recorder = self.manager(source_model(source), where).get_recorder(source['recorder'])
        try:
            value = recorder.get_record_data(source.get('record_idx', 0), source.get('data_idx'))
        except (IndexError, TypeError, RuntimeError) as err:
            raise type(err)(f'{where}: {err}') from None
        if (self.compute_in_fp32 and torch.is_tensor(value) and value.is_floating_point()
                and value.dtype != torch.float32):
            value = value.float()
        connector = source.get('connector')
        if connector is not None:
            try:
                value = self.connectors[connector](value)
            except ValueError as err:
                raise ValueError(f'{where}.connector={connector!r}: {err}') from None
        return value

    def _check_pairs(self, loss_name: str, loss: nn.Module, kwargs: Dict) -> None:
        for s_arg, t_arg in getattr(loss, 'paired_inputs', ()):
            if s_arg not in kwargs or t_arg not in kwargs:
                continue
            s_shape, t_shape = tuple(kwargs[s_arg].shape), tuple(kwargs[t_arg].shape)
            if s_shape != t_shape:
                mapping = self.loss_forward_mappings[loss_name]
                raise ValueError(
                    f'loss_forward_mappings.{loss_name}: {s_arg} has shape {s_shape} '
                    f"(recorder {mapping[s_arg].get('recorder')!r}, connector "
                    f"{mapping[s_arg].get('connector')!r}) but {t_arg} has shape {t_shape} "
                    f"(recorder {mapping[t_arg].get('recorder')!r}). {type(loss).__name__} "
                    'needs equal shapes: declare a connector (e.g. ConvConnector with '
                    f'in_channels={s_shape[1] if len(s_shape) > 1 else "?"}, out_channels='
                    f'{t_shape[1] if len(t_shape) > 1 else "?"}) under `connectors` and '
                    f'name it in loss_forward_mappings.{loss_name}.{s_arg}.connector')

    def compute_distill_losses(self, data_samples: Optional[List[Any]] = None,
                               names: Optional[List[str]] = None) -> Dict[str, torch.Tensor]:
        """Return ``{'distill.<loss name>': value}`` from the tensors recorded this step.

        Args:
            data_samples: the batch's data samples (for ``from_data`` sources).
            names: compute only these losses, in this order (an algorithm whose stages
                use different terms); default all, in ``distill_losses`` order.
        """
        if names is not None:
            unknown = [n for n in names if n not in self.distill_losses]
            if unknown:
                raise KeyError(f'compute_distill_losses: no losses {unknown}; declared: '
                               f'{list(self.distill_losses)}')
        with _autocast_off() if self.compute_in_fp32 else contextlib.nullcontext():
            return self._compute_distill_losses(data_samples, names)

    def _compute_distill_losses(self, data_samples: Optional[List[Any]],
                                names: Optional[List[str]] = None) -> Dict[str, torch.Tensor]:
        losses = {}
        for loss_name in (self.distill_losses if names is None else names):
            loss = self.distill_losses[loss_name]
            kwargs = {}
            for arg, source in self.loss_forward_mappings[loss_name].items():
                where = f'loss_forward_mappings.{loss_name}.{arg}'
                kwargs[arg] = self.get_record(source, data_samples, where)
            self._check_pairs(loss_name, loss, kwargs)
            value = loss(**kwargs)
            parts = value.items() if isinstance(value, dict) else ((None, value), )
            for part, v in parts:
                if self.loss_weight_scale != 1.0:
                    v = v * self.loss_weight_scale
                losses[f'distill.{loss_name}' + ('' if part is None else f'_{part}')] = v
        return losses
