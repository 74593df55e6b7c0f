"""Turn recorded student/teacher tensors into distillation losses, all from config."""
from __future__ import annotations

import contextlib
import inspect
from typing import Any, Dict, List, Optional

import torch
from torch import nn

from mmkd.registry import MODELS

from ..recorders import RecorderManager

_MAPPING_KEYS = {'from_student', 'recorder', 'record_idx', 'data_idx', 'connector', 'from_data'}


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


def teacher_source_key(source: Dict) -> str:
    data_idx = source.get('data_idx')
    return f"{source['recorder']}:{source.get('record_idx', 0)}:{'' if data_idx is None else data_idx}"


def parse_teacher_source_key(key: str):
    name, record_idx, data_idx = key.rsplit(':', 2)
    return name, int(record_idx), (int(data_idx) if data_idx != '' else None)


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
            data_idx=None, connector=None)`` or ``dict(from_data='gt_label')`` (a
            field of the batch's data samples, e.g. labels for DKD).
        compute_in_fp32 (bool): cast every recorded floating tensor to fp32 and run
            connectors and losses with autocast off (default True), so a bf16/fp16
            teacher or a student under ``--amp`` does not make the losses approximate.

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
                 compute_in_fp32: bool = True) -> None:
        super().__init__()
        self.compute_in_fp32 = compute_in_fp32
        self.student_recorders = RecorderManager(student_recorders, side='student')
        self.teacher_recorders = RecorderManager(teacher_recorders, side='teacher')
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
                if 'from_data' in source:
                    continue
                if 'from_student' not in source or 'recorder' not in source:
                    raise KeyError(f"{where} needs 'from_student' and 'recorder' "
                                   "(or 'from_data')")
                manager = self.student_recorders if source['from_student'] else self.teacher_recorders
                if source['recorder'] not in manager.recorders:
                    raise KeyError(f"{where}.recorder={source['recorder']!r} is not declared in "
                                   f'{manager.side}_recorders; declared: {sorted(manager.recorders)}')
                connector = source.get('connector')
                if connector is not None and connector not in self.connectors:
                    raise KeyError(f'{where}.connector={connector!r} is not declared in '
                                   f'connectors; declared: {sorted(self.connectors)}')
            missing = [p for p in required if p not in mapping]
            if missing:
                raise KeyError(f'loss_forward_mappings.{loss_name} lacks required '
                               f'argument(s) {missing} of {type(loss).__name__}.forward')

    def teacher_record_needs(self) -> Dict[str, Optional[int]]:
        """Teacher recorder name -> calls the losses read (None: a call from the end)."""
        needs: Dict[str, Optional[int]] = {}
        for mapping in self.loss_forward_mappings.values():
            for source in mapping.values():
                if 'from_data' in source or source.get('from_student', True):
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
                if 'from_data' in source or source.get('from_student', True):
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
            recorder = self.teacher_recorders.get_recorder(name)
            out[key] = recorder.get_record_data(record_idx, data_idx)
        return out

    def inject_teacher_sources(self, values: Dict[str, torch.Tensor]) -> None:
        """Fill the teacher recorders from cached tensors instead of a teacher forward."""
        expected = self.teacher_sources()
        missing = [k for k in expected if k not in values]
        if missing:
            raise KeyError(f'the teacher cache lacks {missing}; it holds {sorted(values)}. '
                           'Rebuild it with tools/cache_teacher.py for this config.')
        self.teacher_recorders.reset()
        for key in expected:
            name, record_idx, data_idx = parse_teacher_source_key(key)
            buffer = self.teacher_recorders.get_recorder(name).data_buffer
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

    def prepare_from_student(self, student: nn.Module) -> None:
        self.student_recorders.prepare_from_model(student)

    def prepare_from_teacher(self, teacher: nn.Module) -> None:
        self.teacher_recorders.prepare_from_model(teacher)

    # Computing --------------------------------------------------------------------
    def get_record(self, source: Dict, data_samples: Optional[List[Any]] = None,
                   where: str = '') -> Any:
        if 'from_data' in source:
            return _data_field(data_samples, source['from_data'], where)
        manager = self.student_recorders if source['from_student'] else self.teacher_recorders
        recorder = manager.get_recorder(source['recorder'])
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

    def compute_distill_losses(self, data_samples: Optional[List[Any]] = None) -> Dict[str, torch.Tensor]:
        """Return ``{'distill.<loss name>': value}`` from the tensors recorded this step."""
        with _autocast_off() if self.compute_in_fp32 else contextlib.nullcontext():
            return self._compute_distill_losses(data_samples)

    def _compute_distill_losses(self, data_samples: Optional[List[Any]]) -> Dict[str, torch.Tensor]:
        losses = {}
        for loss_name, loss in self.distill_losses.items():
            kwargs = {}
            for arg, source in self.loss_forward_mappings[loss_name].items():
                where = f'loss_forward_mappings.{loss_name}.{arg}'
                kwargs[arg] = self.get_record(source, data_samples, where)
            self._check_pairs(loss_name, loss, kwargs)
            value = loss(**kwargs)
            if self.loss_weight_scale != 1.0:
                value = value * self.loss_weight_scale
            losses[f'distill.{loss_name}'] = value
        return losses
