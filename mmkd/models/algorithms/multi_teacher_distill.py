"""Distillation from several (possibly cross-modal) teachers, incl. MST-Distill.

MST-Distill: Li, Yang, Chen, Dong, Chen, Wang. *MST-Distill: Mixture of Specialized
Teachers for Cross-Modal Knowledge Distillation*. ACM MM 2025, arXiv:2507.07015;
official code github.com/Gray-OREO/MST-Distill (``main-MST-Distill.py``).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List, NamedTuple, Optional, Union

import torch
from mmengine.structures import BaseDataElement
from torch import nn

from mmkd.registry import MODELS

from ..distillers import ConfigurableDistiller, GivenTensors
from ..preprocessors.multimodal_data_preprocessor import (
    MultiTeacherDataPreprocessor,
    build_mmkd,
    select_inputs,
)
from ..recorders import ModuleOutputs
from ..recorders.module_outputs import find_module
from ..teachers import TeacherSet, build_teacher, first_device
from .base_algorithm import BaseAlgorithm, check_finite_losses

_TEACHER_KEYS = ('model', 'ckpt', 'input_key', 'logits_source', 'masknets')
_MASKNET_KEYS = ('layer', 'name')


class Way(NamedTuple):
    """One (specialised) teacher the combiner sees: a teacher, optionally masked."""
    name: str
    teacher: str
    masknet: Optional[str]  # key in ``self.masknets``; None: the plain teacher


@MODELS.register_module()
class MultiTeacherDistill(BaseAlgorithm):
    """Train a student from any number of frozen teachers, each on its own inputs.

    Every teacher may read a different modality (``input_key``) of a multimodal batch
    (``mmkd.PackMultiModalInputs``) through its own data preprocessor; the student
    reads ``student_input_key``. Teachers are combined by a pluggable ``combiner``:
    ``AverageTeachers`` (average of soft labels), ``FixedWeightTeachers`` or
    ``MSTRouter`` (MST-Distill's GateNet + top-k routing + load balancing).

    **MaskNets / specialised teachers** (MST-Distill): ``teachers.<name>.masknets`` is
    a list of ``dict(layer='fc1', type='MaskNet1d', feat_dim=64, ...)``. Each entry
    hooks a MaskNet onto that teacher layer; the teacher with that one mask active is
    one specialised teacher ("way", named ``'<teacher>@<layer>'`` unless ``name`` is
    given). A teacher without masknets is one way as it is. The combiner sees the
    ways in order: teachers in config order, their masknets in list order.

    **Stages** (``stage``, switched during training by ``MSTStageHook``):

    * ``'cotrain'`` (official stage 1): student loss + sum over teachers of
      ``tau^2 KL(p_T || p_S)``. With ``cotrain_teachers=True`` the teachers are
      trained too, as in the official code: every model m (student and teachers)
      minimises its own task loss plus ``sum_{n != m} tau^2 KL(p_n || p_m)``, nothing
      detached; teachers then need ``logits_source`` and are part of the module
      tree (optimizer, checkpoints).
    * ``'masknet'`` (official stage 2): only the MaskNets learn. For each way with a
      MaskNet, ``tau^2 KL(p_S || p_way)``: the masked teacher is pulled towards the
      (eval-mode, no-grad) student's prediction. Teacher weights stay frozen
      (gradients pass through their activations only).
    * ``'student'`` (official stage 3): student loss + the combiner's losses on the
      ways' logits (teachers and MaskNets frozen, no grad).

    **The distiller**: the KL terms of 'cotrain' and 'masknet' are losses of a
    :class:`~mmkd.models.distillers.ConfigurableDistiller` (``self.distiller``) that
    the algorithm builds from the teachers and ways: one
    :class:`~mmkd.models.losses.PerSampleKLDivergence` per term, reading the models
    ``'student'`` and ``'teacher.<name>'`` (recorder ``'logits'``; a masked way's
    logits are recorder ``'<way>'`` of its teacher). The algorithm runs the forwards
    (modalities, masks, stages) and gives the distiller the logits; the combiner of
    the 'student' stage stays a registered component the algorithm calls.

    **Log keys** (mmkd's scheme: ``distill.<term>``, task losses keep their names):
    'cotrain' logs ``distill.loss_kd_from_<teacher>`` (the student's KL to each
    teacher) and, with ``cotrain_teachers``, each teacher's task losses as
    ``<teacher>.<task loss>`` and its KL terms as ``distill.loss_kd_<teacher>_from_<source>``;
    'masknet' logs ``distill.loss_masknet_<way>``; 'student' logs ``distill.<combiner
    term>`` (``distill.loss_kd``, ``distill.loss_lb``, ``distill.route.<way>``).
    ``StopDistillHook`` (``distillation_stopped``) leaves the student's task losses only,
    with no teacher forward; the 'masknet' stage, which has no task loss, refuses it.

    Teachers are frozen (``requires_grad=False``), in eval mode and, unless
    ``cotrain_teachers``, held outside the module tree as in ``SingleTeacherDistill``
    (absent from optimizer, DDP buckets and checkpoints; moved by ``.to()``).
    MaskNets and the combiner's router are submodules: trained, saved, resumed.

    Args:
        architecture (dict | nn.Module): the student (any task model).
        teachers (dict): name -> ``dict(model=<model dict or dict(cfg_path=...)>,
            ckpt=None, input_key=None, logits_source=None, masknets=())``.
            ``input_key``: None (the whole batch inputs), a modality key or a list of
            keys. ``logits_source``: module path whose output is the logits; None
            uses the teacher's ``mode='tensor'`` output.
        combiner (dict): combiner config (see ``teacher_combiners.py``).
        student_logits (str): module path of the student whose output is its
            logits (e.g. ``'head.fc'`` for mmpretrain classifiers).
        student_input_key (str, optional): the student's modality.
        stage (str): initial stage: 'cotrain', 'masknet' or 'student'.
        cotrain_teachers (bool): train the teachers in the 'cotrain' stage.
        cotrain_tau (float): temperature of the co-training KL terms (official 4).
        masknet_tau (float): temperature of the MaskNet loss (official 4).
        calculate_student_loss (bool): add the student's task losses.
        check_finite (bool): raise on a NaN/inf loss, naming the loss and the step,
            before the optimizer step (default True), in every stage.
        data_preprocessor (dict, optional): overrides the student's preprocessor.
        init_cfg (dict, optional): mmengine init config.
    """

    STAGES = ('cotrain', 'masknet', 'student')

    def __init__(self,
                 architecture: Union[dict, nn.Module],
                 teachers: Dict[str, dict],
                 combiner: dict,
                 student_logits: str,
                 student_input_key: Optional[str] = None,
                 stage: str = 'student',
                 cotrain_teachers: bool = False,
                 cotrain_tau: float = 4.0,
                 masknet_tau: float = 4.0,
                 calculate_student_loss: bool = True,
                 check_finite: bool = True,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(architecture, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.check_finite = check_finite
        if not isinstance(teachers, dict) or not teachers:
            raise TypeError('teachers must be a non-empty dict: name -> dict(model=..., '
                            f'ckpt=..., input_key=...), got {teachers!r}')
        for reserved in ('student', 'distill'):
            if reserved in teachers:
                raise KeyError(f"teachers: {reserved!r} is reserved (it names the student or the "
                               'distillation terms in the logs); rename that teacher')
        for name in teachers:
            if not isinstance(name, str) or not name or '.' in name or '/' in name:
                raise KeyError(f"teachers: {name!r} is not a valid teacher name (a non-empty "
                               "string without '.' or '/': it is a model name of the distiller)")
        for key, tau in (('cotrain_tau', cotrain_tau), ('masknet_tau', masknet_tau)):
            if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not tau > 0 \
                    or tau == float('inf'):
                raise ValueError(f'{key}={tau!r}: a temperature must be a finite number > 0')
        self.cotrain_teachers = cotrain_teachers
        self.cotrain_tau = cotrain_tau
        self.masknet_tau = masknet_tau
        self.calculate_student_loss = calculate_student_loss
        self.student_input_key = student_input_key

        self.student_recorder = ModuleOutputs(student_logits)
        try:
            self.student_recorder.prepare_from_model(self.architecture)
        except ValueError as err:
            raise ValueError(f'student_logits: {err}') from None

        models: Dict[str, nn.Module] = OrderedDict()
        self.teacher_input_keys: Dict[str, object] = {}
        self.teacher_recorders: Dict[str, Optional[ModuleOutputs]] = {}
        # Frozen teachers live in a TeacherSet, which hides them from the module tree
        # (see class docstring); co-trained ones are trained, so they are submodules.
        self.teacher_set = TeacherSet(owner=type(self).__name__)
        for name, cfg in teachers.items():
            models[name] = self._build_teacher(name, cfg)
        if cotrain_teachers:
            self.teacher_models = nn.ModuleDict(models)
        for model in models.values():
            model.eval()
            model.requires_grad_(False)

        self.masknets = nn.ModuleDict()
        self.ways: List[Way] = []
        self._active_mask: Optional[str] = None
        self._hook_handles = []
        for name, cfg in teachers.items():
            self._build_masknets(name, models[name], cfg.get('masknets') or ())
        names = [w.name for w in self.ways]
        if len(set(names)) != len(names):
            raise ValueError(f'teachers: two ways share a name in {names}; give masknets '
                             "entries distinct 'name's")
        for way in self.ways:
            if way.masknet is not None and way.name == 'logits':
                raise ValueError(f"teachers.{way.teacher}.masknets: the way name 'logits' is "
                                 "taken (the distiller's recorder of the plain teacher); give "
                                 'that entry another name')
        self.distiller = self._build_distiller(list(models))

        if not isinstance(combiner, nn.Module):
            if not isinstance(combiner, dict) or 'type' not in combiner:
                raise TypeError("combiner must be a dict with 'type' (AverageTeachers, "
                                f'FixedWeightTeachers, MSTRouter), got {combiner!r}')
            try:
                combiner = build_mmkd(combiner)
            except (TypeError, KeyError) as err:
                raise type(err)(f'combiner: {err}') from None
        self.combiner = combiner
        self.combiner.setup(names)

        self.data_preprocessor = MultiTeacherDataPreprocessor(
            self.data_preprocessor, student_input_key,
            {name: (model.data_preprocessor, self.teacher_input_keys[name])
             for name, model in models.items()})
        self.stage = 'student'
        self.set_stage(stage)

    # Building -------------------------------------------------------------------------
    def _build_teacher(self, name: str, cfg: dict) -> nn.Module:
        where = f'teachers.{name}'
        if not isinstance(cfg, dict) or 'model' not in cfg:
            raise TypeError(f"{where} must be a dict with 'model' (and optional 'ckpt', "
                            f"'input_key', 'logits_source', 'masknets'), got {cfg!r}")
        unknown = sorted(set(cfg) - set(_TEACHER_KEYS))
        if unknown:
            raise KeyError(f'{where}: unknown keys {unknown}; valid: {list(_TEACHER_KEYS)}')
        kwargs = dict(key=f'{where}.model', ckpt_key=f'{where}.ckpt')
        if self.cotrain_teachers:  # trained here: its weights are in this model's checkpoint
            model, _ = build_teacher(cfg['model'], cfg.get('ckpt'), structure_only_allowed=False,
                                     **kwargs)
        else:
            model = self.teacher_set.add(
                name, cfg['model'], cfg.get('ckpt'), **kwargs,
                missing_ckpt_warning=f'MultiTeacherDistill: {where}.ckpt is not given, the '
                'teacher keeps its initial weights (fine for tests, wrong for real training)')
        if not hasattr(model, 'data_preprocessor'):
            raise TypeError(f'{where}.model: {type(model).__name__} has no data_preprocessor; '
                            'teachers must be mmengine BaseModels')
        self.teacher_input_keys[name] = cfg.get('input_key')
        source = cfg.get('logits_source')
        recorder = None
        if source is None and self.cotrain_teachers:
            raise KeyError(f'{where}.logits_source is required with cotrain_teachers=True: '
                           "the teacher runs in 'loss' mode and its logits are recorded "
                           "from that module (e.g. 'fc2' for MultiModalClassifier, "
                           "'head.fc' for mmpretrain, 'decode_head.conv_seg' for mmseg)")
        if source is not None:
            recorder = ModuleOutputs(source)
            try:
                recorder.prepare_from_model(model)
            except ValueError as err:
                raise ValueError(f'{where}.logits_source: {err}') from None
        self.teacher_recorders[name] = recorder
        return model

    def _build_masknets(self, name: str, teacher: nn.Module, entries) -> None:
        if not entries:
            self.ways.append(Way(name, name, None))
            return
        if isinstance(entries, dict):
            raise TypeError(f'teachers.{name}.masknets must be a list of dict(layer=..., '
                            "type='MaskNet1d', ...), got a dict")
        for i, entry in enumerate(entries):
            where = f'teachers.{name}.masknets[{i}]'
            if not isinstance(entry, dict) or 'layer' not in entry or 'type' not in entry:
                raise TypeError(f"{where} must be a dict with 'layer' and 'type' (MaskNet1d "
                                f'or MaskNet2d), got {entry!r}')
            entry = dict(entry)
            layer = entry.pop('layer')
            way_name = entry.pop('name', f'{name}@{layer}')
            try:
                module = find_module(teacher, layer, what=f'{where}.layer')
            except ValueError as err:
                raise ValueError(str(err)) from None
            try:
                masknet = build_mmkd(entry)
            except (TypeError, KeyError, ValueError) as err:
                raise type(err)(f'{where}: {err}') from None
            key = f'{name}_{i}'
            self.masknets[key] = masknet
            self._hook_handles.append(module.register_forward_hook(self._mask_hook(key, where)))
            self.ways.append(Way(way_name, name, key))

    def _build_distiller(self, teacher_names: List[str]) -> ConfigurableDistiller:
        """The KL terms of 'cotrain' and 'masknet' as losses of one distiller.

        Losses are declared stage by stage in the order they are logged; each stage
        computes its own (:attr:`_stage_terms`: distiller loss name -> logged term). A
        way's default name holds the layer path, whose '.' a loss name (a ModuleDict
        key) cannot hold: those losses are declared with '.' as '__' and logged under
        the way's name.
        """
        recorders = {t: dict(logits=GivenTensors(f'teachers.{t} logits')) for t in teacher_names}
        for way in self.ways:
            if way.masknet is not None:
                recorders[way.teacher][way.name] = GivenTensors(f'way {way.name} logits')
        losses, mappings = OrderedDict(), OrderedDict()

        def term(name, tau, fitted, target, detach_target=True):
            key = name.replace('.', '__')
            if key in losses:
                raise ValueError(f'teachers: two distillation terms are both declared as {key!r} '
                                 "(teacher or way names that differ only in '.' and '__'); "
                                 'rename one')
            losses[key] = dict(type='PerSampleKLDivergence', tau=tau,
                               detach_target=detach_target)
            mappings[key] = dict(preds_S=dict(from_model=fitted[0], recorder=fitted[1]),
                                 preds_T=dict(from_model=target[0], recorder=target[1]))
            return key, name

        cotrain = [term(f'loss_kd_from_{t}', self.cotrain_tau, ('student', 'logits'),
                        (f'teacher.{t}', 'logits'), detach_target=not self.cotrain_teachers)
                   for t in teacher_names]
        if self.cotrain_teachers:
            # Official stage 1: every model m learns sum_{n != m} tau^2 KL(p_n || p_m),
            # nothing detached; the student's terms are named as without co-training.
            models = ['student'] + [f'teacher.{t}' for t in teacher_names]
            cotrain = []
            for target in models:
                for source in models:
                    if source == target:
                        continue
                    who = '' if target == 'student' else f"{target.split('.', 1)[1]}_"
                    src = source.split('.', 1)[-1]
                    name = f'loss_kd_{who}from_{src}'
                    if target == 'student':
                        cotrain.append((name, name))  # declared above, detach_target=False
                        continue
                    cotrain.append(term(name, self.cotrain_tau, (target, 'logits'),
                                        (source, 'logits'), detach_target=False))
        masknet = [term(f'loss_masknet_{w.name}', self.masknet_tau,
                        (f'teacher.{w.teacher}', w.name), ('student', 'logits'))
                   for w in self.ways if w.masknet is not None]
        self._stage_terms = dict(cotrain=OrderedDict(cotrain), masknet=OrderedDict(masknet))
        return ConfigurableDistiller(
            student_recorders=dict(logits=GivenTensors('student_logits')),
            named_teacher_recorders=recorders, distill_losses=losses,
            loss_forward_mappings=mappings)

    def _distill(self, stage: str, logits: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """The distiller's terms of ``stage`` from ``logits``: (model, recorder) -> tensor."""
        try:
            for (model, recorder), value in logits.items():
                self.distiller.give(model, recorder, value)
            terms = self._stage_terms[stage]
            values = self.distiller.compute_distill_losses(names=list(terms))
            return OrderedDict((f'distill.{terms[key]}', values[f'distill.{key}']) for key in terms)
        finally:
            self.distiller.reset()

    def _mask_hook(self, key: str, where: str):
        def hook(module, args, output):
            if self._active_mask != key:
                return None
            if not isinstance(output, torch.Tensor):
                raise TypeError(f'{where}.layer outputs a {type(output).__name__}; a MaskNet '
                                'needs a tensor: choose a layer that returns one')
            return self.masknets[key](output)
        return hook

    # The hidden teachers --------------------------------------------------------------
    @property
    def teachers(self) -> Dict[str, nn.Module]:
        if self.cotrain_teachers:
            return dict(self.teacher_models.items())
        return self.teacher_set.as_dict()

    def train(self, mode: bool = True) -> 'MultiTeacherDistill':
        super().train(mode)
        teachers_learn = mode and self.stage == 'cotrain' and self.cotrain_teachers
        for teacher in self.teachers.values():
            teacher.train(teachers_learn)
        self.masknets.train(mode and self.stage == 'masknet')
        if self.stage == 'masknet':
            self.architecture.eval()  # the student only provides targets (official stage 2)
        return self

    def set_stage(self, stage: str) -> None:
        """Switch to 'cotrain', 'masknet' or 'student' (see the class docstring)."""
        if stage not in self.STAGES:
            raise ValueError(f'stage={stage!r} is not valid; choose one of {self.STAGES}')
        if stage == 'masknet' and not len(self.masknets):
            raise ValueError("stage='masknet' but no teacher has masknets; add "
                             'teachers.<name>.masknets or drop the stage')
        self.stage = stage
        for teacher in self.teachers.values():
            teacher.requires_grad_(stage == 'cotrain' and self.cotrain_teachers)
        self.train(self.training)

    # Forward --------------------------------------------------------------------------
    def forward(self, inputs, data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'tensor', **kwargs):
        if mode in ('predict', 'tensor') and isinstance(inputs, dict) \
                and self.student_input_key is not None:
            inputs = select_inputs(inputs, self.student_input_key, 'student_input_key')
        return super().forward(inputs, data_samples, mode=mode, **kwargs)

    def _teacher_logits(self, name: str, inputs, data_samples) -> torch.Tensor:
        if name in self.teacher_set:  # frozen (else co-trained: a submodule)
            teacher = self.teacher_set.ready(name, first_device(inputs, torch.device('cpu')))
        else:
            teacher = self.teachers[name]
        recorder = self.teacher_recorders[name]
        if recorder is None:
            out = teacher(inputs, data_samples, mode='tensor')
        else:
            with recorder:
                teacher(inputs, data_samples, mode='tensor')
            out = recorder.get_record_data(0)
            recorder.reset_data_buffer()
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"teachers.{name}: mode='tensor' returned a "
                            f'{type(out).__name__}, not logits; set teachers.{name}.'
                            'logits_source to the module that outputs the logits')
        return out

    def _way_logits(self, way: Way, teacher_inputs, data_samples) -> torch.Tensor:
        self._active_mask = way.masknet
        try:
            return self._teacher_logits(way.teacher, teacher_inputs[way.teacher], data_samples)
        finally:
            self._active_mask = None

    def _student_forward(self, inputs, data_samples, mode: str):
        with self.student_recorder:
            out = self.architecture(inputs, data_samples, mode=mode)
        logits = self.student_recorder.get_record_data(0)
        self.student_recorder.reset_data_buffer()
        return out, logits

    def loss(self, inputs, data_samples: Optional[List[BaseDataElement]] = None,
             teacher_inputs: Optional[Dict[str, object]] = None) -> Dict[str, torch.Tensor]:
        if teacher_inputs is None:
            raise ValueError('MultiTeacherDistill.loss needs `teacher_inputs`: run the batch '
                             "through the algorithm's data_preprocessor (train_step does)")
        self.refuse_cached_teacher_outputs(
            data_samples, 'each teacher reads its own modality (and, with MaskNets, runs once '
            'per specialised teacher); tools/cache_teacher.py stores one teacher\'s outputs')
        if not self.distill_active:
            if self.stage == 'masknet':
                raise self.cannot_stop("stage 'masknet' trains the MaskNets on distillation "
                                       'terms only')
            # The student on its task alone: no teacher forward (co-trained teachers rest too).
            losses, _ = self._task_forward(inputs, data_samples)
            losses = self.touch_distillation_parameters(losses)  # DDP: see the method
        elif self.stage == 'masknet':
            losses = self._masknet_losses(inputs, data_samples, teacher_inputs)
        elif self.stage == 'cotrain':
            losses = self._cotrain_losses(inputs, data_samples, teacher_inputs)
        else:
            losses = self._student_losses(inputs, data_samples, teacher_inputs)
        # distill_loss_scale: the distiller scales its terms (its loss_weight_scale),
        # _student_losses the combiner's; the NaN check here.
        if self.check_finite:
            check_finite_losses(losses)
        return losses

    def _task_forward(self, inputs, data_samples):
        mode = 'loss' if self.calculate_student_loss else 'tensor'
        out, logits = self._student_forward(inputs, data_samples, mode)
        return (dict(out) if self.calculate_student_loss else {}), logits

    def _student_losses(self, inputs, data_samples, teacher_inputs):
        with torch.no_grad():
            stacked = torch.stack(
                [self._way_logits(w, teacher_inputs, data_samples) for w in self.ways], dim=1)
        losses, s_logits = self._task_forward(inputs, data_samples)
        terms = {f'distill.{key}': value for key, value in self.combiner(s_logits, stacked).items()}
        losses.update(self.scale_distill_losses(terms))
        return losses

    def _masknet_losses(self, inputs, data_samples, teacher_inputs):
        with torch.no_grad():
            _, s_logits = self._student_forward(inputs, data_samples, 'tensor')
        logits = {('student', 'logits'): s_logits}
        for way in self.ways:
            if way.masknet is not None:
                logits[(f'teacher.{way.teacher}', way.name)] = self._way_logits(
                    way, teacher_inputs, data_samples)
        return self._distill('masknet', logits)

    def _cotrain_losses(self, inputs, data_samples, teacher_inputs):
        if not self.cotrain_teachers:
            with torch.no_grad():
                t_logits = {n: self._teacher_logits(n, teacher_inputs[n], data_samples)
                            for n in self.teachers}
            losses, s_logits = self._task_forward(inputs, data_samples)
            logits = {('student', 'logits'): s_logits}
            logits.update({(f'teacher.{n}', 'logits'): v for n, v in t_logits.items()})
            losses.update(self._distill('cotrain', logits))
            return losses
        # Official stage 1: all models learn, each from the labels (its own task loss)
        # and from the others.
        losses, s_logits = self._task_forward(inputs, data_samples)
        t_logits = OrderedDict()
        for name, teacher in self.teachers.items():
            recorder = self.teacher_recorders[name]
            with recorder:
                task_losses = teacher(teacher_inputs[name], data_samples, mode='loss')
            t_logits[name] = recorder.get_record_data(0)
            recorder.reset_data_buffer()
            for key, value in task_losses.items():
                losses[f'{name}.{key}'] = value  # a task loss of the co-trained teacher
        logits = {('student', 'logits'): s_logits}
        logits.update({(f'teacher.{n}', 'logits'): v for n, v in t_logits.items()})
        losses.update(self._distill('cotrain', logits))
        return losses
