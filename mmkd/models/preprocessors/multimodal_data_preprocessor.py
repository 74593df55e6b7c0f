"""Data preprocessors for batches that carry several modalities.

A multimodal batch (packed by ``mmkd.PackMultiModalInputs``) has
``inputs = {'img': [tensor, ...], 'audio': [tensor, ...]}``: one list per modality.

* :class:`MultiModalDataPreprocessor` prepares every modality of such a batch for one
  model (e.g. a multimodal teacher): per modality, either stacking and normalising
  or any task preprocessor (``mmpretrain.ClsDataPreprocessor``, ...).
* :class:`MultiTeacherDataPreprocessor` (built by ``MultiTeacherDistill``) runs the
  student's preprocessor on the student's modality and each teacher's own
  preprocessor on that teacher's modalities, so every model sees its input exactly
  as it was trained.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseDataPreprocessor
from torch import nn

from mmkd.registry import MODELS

InputKey = Union[None, str, Sequence[str]]


def select_inputs(inputs: Any, key: InputKey, where: str) -> Any:
    """Pick a model's part of a (raw or processed) batch.

    ``key=None``: everything; a string: that modality (a tensor or list); a list of
    strings: a dict of those modalities.
    """
    if key is None:
        return inputs
    if not isinstance(inputs, dict):
        raise TypeError(f'{where}={key!r} selects a modality, but the batch inputs are a '
                        f'{type(inputs).__name__}, not a dict of modalities: pack the '
                        "data with dict(type='mmkd.PackMultiModalInputs', keys=(...))")
    keys = [key] if isinstance(key, str) else list(key)
    missing = [k for k in keys if k not in inputs]
    if missing:
        raise KeyError(f'{where}={key!r}: the batch has no modality {missing}; it has '
                       f'{sorted(inputs)}')
    if isinstance(key, str):
        return inputs[key]
    return {k: inputs[k] for k in keys}


@MODELS.register_module()
class MultiModalDataPreprocessor(BaseDataPreprocessor):
    """Stack and normalise each modality of a dict-of-lists batch.

    Args:
        modalities (dict): modality key -> either a preprocessor config with
            ``type`` (called on that modality alone, e.g.
            ``dict(type='mmpretrain.ClsDataPreprocessor', mean=..., std=...)``) or
            ``dict(mean=None, std=None)``: stack the samples (equal shapes), cast to
            float and normalise channel-wise, ``(x - mean[c]) / std[c]`` with c on
            dim 1 of the batch (``mean``/``std`` a number or one value per channel).
        concat (bool): return one tensor, the modalities concatenated along dim 1
            in ``modalities`` order (e.g. RGB + depth -> a 4-channel input for a
            single-input task model such as an mmseg segmentor); all configured
            modalities must then be in the batch.
        non_blocking (bool): asynchronous host-to-device copies.

    A batch key that is not configured raises an error naming the configured ones;
    configured keys absent from a batch are skipped (e.g. an image-only val set).
    """

    def __init__(self, modalities: Dict[str, dict], concat: bool = False,
                 non_blocking: bool = False) -> None:
        super().__init__(non_blocking=non_blocking)
        self.concat = concat
        if not isinstance(modalities, dict) or not modalities:
            raise TypeError('MultiModalDataPreprocessor.modalities must be a non-empty dict '
                            f'(modality key -> config), got {modalities!r}')
        self.keys = list(modalities)
        self.task_preprocessors = nn.ModuleDict()
        for key, cfg in modalities.items():
            cfg = dict(cfg or {})
            if 'type' in cfg:
                self.task_preprocessors[key] = build_data_preprocessor(cfg)
                continue
            unknown = set(cfg) - {'mean', 'std'}
            if unknown:
                raise KeyError(f'modalities.{key}: unknown keys {sorted(unknown)}; valid: '
                               "'mean', 'std' (or a preprocessor config with 'type')")
            for name in ('mean', 'std'):
                value = cfg.get(name)
                tensor = torch.tensor([] if value is None else value, dtype=torch.float32)
                # Not persistent: configuration, not learned state.
                self.register_buffer(f'{key}_{name}', tensor.reshape(-1), persistent=False)

    def _stack(self, key: str, values: Union[torch.Tensor, List[torch.Tensor]]) -> torch.Tensor:
        if isinstance(values, torch.Tensor):
            batch = values
        else:
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) != 1:
                raise ValueError(f'modality {key!r}: samples of one batch have different '
                                 f'shapes {sorted(shapes)}; resize or pad them in the pipeline')
            batch = torch.stack(list(values))
        batch = batch.to(self.device).float()
        for name in ('mean', 'std'):
            value = getattr(self, f'{key}_{name}')
            if value.numel() == 0:
                continue
            if value.numel() not in (1, batch.shape[1]):
                raise ValueError(f'modalities.{key}.{name} has {value.numel()} values but the '
                                 f'{key!r} batch has {batch.shape[1]} channels (dim 1)')
            shape = (1, -1) + (1, ) * (batch.dim() - 2)
            batch = batch - value.view(shape) if name == 'mean' else batch / value.view(shape)
        return batch

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        inputs = data['inputs']
        data_samples = data.get('data_samples')
        if not isinstance(inputs, dict):
            raise TypeError('MultiModalDataPreprocessor expects dict inputs (one entry per '
                            f'modality), got {type(inputs).__name__}; pack the data with '
                            "dict(type='mmkd.PackMultiModalInputs', keys=(...))")
        unknown = sorted(set(inputs) - set(self.keys))
        if unknown:
            raise KeyError(f'MultiModalDataPreprocessor: modalities {unknown} of the batch are '
                           f'not configured; configured: {self.keys}')
        out = {}
        for key, values in inputs.items():
            if key in self.task_preprocessors:
                processed = self.task_preprocessors[key](
                    dict(inputs=values, data_samples=data_samples), training)
                out[key] = processed['inputs']
                data_samples = processed.get('data_samples', data_samples)
            else:
                out[key] = self._stack(key, values)
        if self.concat:
            missing = [k for k in self.keys if k not in out]
            if missing:
                raise KeyError(f'MultiModalDataPreprocessor(concat=True): the batch lacks '
                               f'modalities {missing}; it has {sorted(out)}')
            return dict(inputs=torch.cat([out[k] for k in self.keys], dim=1),
                        data_samples=data_samples)
        return dict(inputs=out, data_samples=data_samples)


class MultiTeacherDataPreprocessor(BaseDataPreprocessor):
    """Prepare one raw batch for a student and several teachers.

    In training it returns the student's ``inputs``/``data_samples`` plus
    ``teacher_inputs = {teacher name: that teacher's processed inputs}``; in
    evaluation only the student's part. Teacher preprocessors are held outside the
    module tree (the teachers themselves are), the student's is a submodule.

    Args:
        student (nn.Module): the student's preprocessor.
        student_key: the student's modality (see :func:`select_inputs`).
        teachers (dict): name -> (preprocessor, input key).
    """

    def __init__(self, student: nn.Module, student_key: InputKey,
                 teachers: Dict[str, Tuple[nn.Module, InputKey]]) -> None:
        super().__init__()
        self.student = student
        self.student_key = student_key
        self._teachers: List[Dict[str, Tuple[nn.Module, InputKey]]] = [dict(teachers)]

    def forward(self, data: dict, training: bool = False) -> dict:
        raw = data['inputs']
        data_samples = data.get('data_samples')
        teacher_inputs = {}
        if training:
            # Teachers first, student last: preprocessors that write batch metainfo into
            # the shared data samples (mmdet's) must leave the student's there.
            for name, (preprocessor, key) in self._teachers[0].items():
                part = select_inputs(raw, key, f'teachers.{name}.input_key')
                processed = preprocessor(dict(inputs=part, data_samples=data_samples), True)
                teacher_inputs[name] = processed['inputs']
        # A single-modality batch (e.g. an image-only val set) goes to the student as is.
        part = select_inputs(raw, self.student_key, 'student_input_key') \
            if isinstance(raw, dict) else raw
        out = self.student(dict(inputs=part, data_samples=data_samples), training)
        if training:
            out['teacher_inputs'] = teacher_inputs
        return out


def build_data_preprocessor(cfg: Optional[Union[dict, nn.Module]]) -> Optional[nn.Module]:
    """Build a preprocessor config: ``_scope_`` or a prefixed type (``'mmpretrain.X'``)
    selects a task package; an unprefixed type is looked up in mmkd, then its parents."""
    if cfg is None or isinstance(cfg, nn.Module):
        return cfg
    cfg = dict(cfg)
    if '_scope_' in cfg:
        from mmkd.utils.model_builder import build_in_scope
        return build_in_scope(cfg, None)
    return build_mmkd(cfg)


def build_mmkd(cfg: dict) -> nn.Module:
    """Build ``cfg`` from mmkd's registry whatever the current default scope is.

    A task config (``default_scope='mmpretrain'``) would otherwise make the
    registry look for unprefixed mmkd types in mmpretrain's registry.
    """
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmkd'):
        return MODELS.build(cfg)
