"""Online collaborative distillation between a CNN and a ViT segmenter (HFD + BSD).

Zhu, Luo, Zheng, Wang, Wang. *A Good Student is Cooperative and Reliable:
CNN-Transformer Collaborative Learning for Semantic Segmentation*. ICCV 2023,
arXiv:2307.12574.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List, Optional, Union

import torch
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapperDict
from mmengine.structures import BaseDataElement
from torch import nn

from mmkd.registry import MODELS
from mmkd.utils.model_builder import build_in_scope, build_task_model

from ..distillers import ConfigurableDistiller, GivenTensors
from ..recorders import ModuleInputs, ModuleOutputs
from .base_algorithm import BaseAlgorithm, check_finite_losses

STUDENTS = ('cnn', 'vit')
_TERMS = ('hfd', 'region_bsd', 'pixel_bsd')
_TERM_KEYS = {'hfd': ('sources', 'connectors', 'adapters', 'loss'),
              'region_bsd': ('sources', 'connectors', 'adapters', 'loss'),
              'pixel_bsd': ('loss', )}
_SOURCE_KEYS = ('source', 'data_idx', 'inputs')


def build_student(cfg: Union[dict, nn.Module], key: str):
    """A student from a model dict or ``dict(cfg_path=..., pretrained=False, ...)``.

    Keys next to ``cfg_path`` (or ``model_override=dict(...)``) override the referenced
    model, e.g. a DeepLabV3+ R18 for ADE20K derived from mmseg's R50 config; see
    :func:`mmkd.utils.model_builder.build_task_model`.
    """
    return build_task_model(cfg, key=key)


@MODELS.register_module()
class CollaborativeDistill(BaseAlgorithm):
    """Two trainable segmenters (a CNN and a ViT) that teach each other online.

    Each student has its own task loss and its own optimizer (``optim_wrapper`` is an
    ``OptimWrapperDict`` with keys ``cnn`` and ``vit``, built by
    ``mmkd.CollaborativeOptimWrapperConstructor``). Three distillation terms are
    computed in both directions, each time with a *learner* and the other student as
    the term's *teacher*, whose tensors are detached:

    * ``hfd`` (:class:`~mmkd.models.losses.HFDLoss`): the learner's low-layer feature,
      mapped by the learner's connector into the other student's space, mimics the
      other's low-layer feature.
    * ``region_bsd`` (:class:`~mmkd.models.losses.RegionBSDLoss`): on (usually
      high-level, pre-classifier) features, per region, only in the direction of the
      student with the lower segmentation loss in that region.
    * ``pixel_bsd`` (:class:`~mmkd.models.losses.PixelBSDLoss`): KL on the logits at
      the pixels where the teacher of the term is correct (and the learner wrong or
      less confident in the true class).

    **The distiller**: the six terms are losses of a
    :class:`~mmkd.models.distillers.ConfigurableDistiller` (``self.distiller``), built
    from ``hfd``/``region_bsd``/``pixel_bsd``, whose models are the students
    ``'student.cnn'`` and ``'student.vit'``: recorder ``'logits'`` (the classifier's
    output), ``'<term>'`` (the term's feature after the student's adapter) and
    ``'<term>_mapped'`` (after the adapter and the student's connector, as learner).
    ``loss_<term>_<learner>`` reads the learner's ``<term>_mapped`` and the other's
    ``<term>`` (and logits, and ``gt=dict(from_data='gt_sem_seg')``). Adapters and
    connectors stay in ``connectors.<student>`` (each student's optimizer owns its
    own); the algorithm applies them and gives the distiller the results.

    A student's parameters (and its connectors/adapters, which live in
    ``connectors.<student>``) thus receive gradients only from its own task loss
    and from the terms where it is the learner. Losses are logged as
    ``<student>.<task loss>`` (task losses of two models) and
    ``distill.loss_<term>_<student>`` where ``<student>`` is the learner, e.g.
    ``cnn.decode.loss_ce`` and ``distill.loss_hfd_cnn``.

    The core's features hold as for every ``BaseAlgorithm``: ``DistillLossWeightHook``
    scales the ``distill.*`` terms, ``StopDistillHook`` leaves each student's task
    losses only (there is no frozen teacher to skip), ``check_finite``; cached teacher
    outputs are refused (the teachers are the students, trained online).

    Args:
        students (dict): ``dict(cnn=<model cfg>, vit=<model cfg>)``; each a model
            dict or ``dict(cfg_path=..., pretrained=False[, model_override=...])``.
        logits (dict): module path of each student's classifier whose output is the
            logits, default ``decode_head.conv_seg`` for both.
        hfd (dict, optional): ``dict(sources=dict(cnn=SRC, vit=SRC), connectors=dict(
            cnn=CFG, vit=CFG), adapters=dict(...), loss=dict(type='HFDLoss', ...))``.
            ``SRC`` is ``dict(source='backbone.layer1', data_idx=None, inputs=False)``
            (module outputs, or inputs with ``inputs=True``). ``connectors.<s>`` maps
            student s's feature (as learner) into the other's space (missing:
            identity). ``adapters.<s>`` (optional, e.g. ``TokensToMap``) turns student
            s's raw recorded tensor into a map before either use. None: term off.
        region_bsd (dict, optional): same keys, ``loss=dict(type='RegionBSDLoss')``.
        pixel_bsd (dict, optional): ``dict(loss=dict(type='PixelBSDLoss', ...))``.
        eval_student (str): which student ``predict``/``tensor`` (and so
            ``tools/test.py``) use: 'cnn' or 'vit'.
        ignore_index (int): label without ground truth (mmseg: 255).
        check_finite (bool): raise on a NaN/inf loss before any optimizer step.
        data_preprocessor (dict, optional): default: the CNN student's.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 students: Dict[str, Union[dict, nn.Module]],
                 logits: Optional[Dict[str, str]] = None,
                 hfd: Optional[dict] = None,
                 region_bsd: Optional[dict] = None,
                 pixel_bsd: Optional[dict] = None,
                 eval_student: str = 'cnn',
                 ignore_index: int = 255,
                 check_finite: bool = True,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if not isinstance(students, dict) or set(students) != set(STUDENTS):
            got = sorted(students) if isinstance(students, dict) else type(students).__name__
            raise KeyError(f'students must be dict(cnn=..., vit=...), got keys {got}')
        built, scopes = OrderedDict(), {}
        for name in STUDENTS:
            built[name], info = build_student(students[name], key=f'students.{name}')
            scopes[name] = info['scope']
        if data_preprocessor is None:
            data_preprocessor = getattr(built['cnn'], 'data_preprocessor', None)
        elif isinstance(data_preprocessor, dict):
            data_preprocessor = build_in_scope(data_preprocessor, scopes['cnn'])
        # BaseAlgorithm's own __init__ builds one student; the two are built above.
        BaseModel.__init__(self, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.init_distillation_state()
        self.students = nn.ModuleDict(built)
        self.eval_student = eval_student  # checked by the setter
        self.ignore_index = ignore_index
        self.check_finite = check_finite

        logits = dict(logits or {})
        unknown = set(logits) - set(STUDENTS)
        if unknown:
            raise KeyError(f'logits: unknown students {sorted(unknown)}; valid: {list(STUDENTS)}')
        # The recorders of each student, as a model 'student.<name>' of the distiller.
        self._recorders_of: Dict[str, Dict[str, object]] = {s: OrderedDict() for s in STUDENTS}
        for name in STUDENTS:
            rec = ModuleOutputs(logits.get(name, 'decode_head.conv_seg'))
            try:
                rec.prepare_from_model(self.students[name])
            except ValueError as err:
                raise ValueError(f'logits.{name}: {err}') from None
            self._recorders_of[name]['logits'] = rec

        # Everything learnable that belongs to student s lives in connectors[s].
        self.connectors = nn.ModuleDict({s: nn.ModuleDict() for s in STUDENTS})
        self._feature_recorders: Dict[str, Dict[str, tuple]] = {}
        self._term_losses: Dict[str, nn.Module] = OrderedDict()
        for term, cfg in (('hfd', hfd), ('region_bsd', region_bsd), ('pixel_bsd', pixel_bsd)):
            if cfg is not None:
                self._build_term(term, cfg)
        if not self._term_losses:
            raise ValueError('CollaborativeDistill: hfd, region_bsd and pixel_bsd are all None; '
                             'enable at least one term (or train the students alone)')
        self.distiller = self._build_distiller()

    # Construction ------------------------------------------------------------------
    def _build_term(self, term: str, cfg: dict) -> None:
        if not isinstance(cfg, dict):
            raise TypeError(f'{term} must be a dict or None, got {type(cfg).__name__}')
        unknown = set(cfg) - set(_TERM_KEYS[term])
        if unknown:
            raise KeyError(f'{term}: unknown keys {sorted(unknown)}; valid: {list(_TERM_KEYS[term])}')
        if 'loss' not in cfg:
            raise KeyError(f"{term}.loss is required (e.g. dict(type='{self._default_loss(term)}'))")
        loss = cfg['loss']
        self._term_losses[term] = loss if isinstance(loss, nn.Module) else MODELS.build(loss)
        if term == 'pixel_bsd':
            return
        sources = cfg.get('sources') or {}
        if set(sources) != set(STUDENTS):
            raise KeyError(f'{term}.sources must name both students (cnn, vit), got {sorted(sources)}')
        self._feature_recorders[term] = {}
        for name in STUDENTS:
            src = sources[name]
            if isinstance(src, str):
                src = dict(source=src)
            bad = set(src) - set(_SOURCE_KEYS)
            if bad or 'source' not in src:
                raise KeyError(f'{term}.sources.{name}: unknown keys {sorted(bad)} or no source; '
                               f'valid: {list(_SOURCE_KEYS)}')
            rec = (ModuleInputs if src.get('inputs', False) else ModuleOutputs)(src['source'])
            try:
                rec.prepare_from_model(self.students[name])
            except ValueError as err:
                raise ValueError(f'{term}.sources.{name}: {err}') from None
            data_idx = src.get('data_idx', 0 if src.get('inputs', False) else None)
            self._feature_recorders[term][name] = (rec, data_idx)
            self._recorders_of[name][f'{term}_raw'] = rec
            self._recorders_of[name][term] = GivenTensors(f'{term} feature of {name}')
            self._recorders_of[name][f'{term}_mapped'] = GivenTensors(
                f'{term} feature of {name}, mapped by its connector')
        for kind in ('connectors', 'adapters'):
            part = cfg.get(kind) or {}
            unknown = set(part) - set(STUDENTS)
            if unknown:
                raise KeyError(f'{term}.{kind}: unknown students {sorted(unknown)}; valid: {list(STUDENTS)}')
            for name, module_cfg in part.items():
                if module_cfg is None:
                    continue
                module = module_cfg if isinstance(module_cfg, nn.Module) else MODELS.build(module_cfg)
                key = f'{term}_connector' if kind == 'connectors' else f'{term}_adapter'
                self.connectors[name][key] = module

    def _build_distiller(self) -> ConfigurableDistiller:
        """The six terms (three per learner, learner-major) as the distiller's losses."""
        losses, mappings = OrderedDict(), OrderedDict()
        gt = dict(from_data='gt_sem_seg')
        for learner, other in (('cnn', 'vit'), ('vit', 'cnn')):
            me, them = f'student.{learner}', f'student.{other}'

            def src(model, recorder):
                return dict(from_model=model, recorder=recorder)
            for term, loss in self._term_losses.items():
                name = f'loss_{term}_{learner}'
                losses[name] = loss  # one module, two directions
                if term == 'hfd':
                    mappings[name] = dict(pred=src(me, 'hfd_mapped'), target=src(them, 'hfd'))
                elif term == 'region_bsd':
                    mappings[name] = dict(
                        pred=src(me, 'region_bsd_mapped'), target=src(them, 'region_bsd'),
                        learner_logits=src(me, 'logits'), teacher_logits=src(them, 'logits'),
                        gt=gt)
                else:
                    mappings[name] = dict(learner_logits=src(me, 'logits'),
                                          teacher_logits=src(them, 'logits'), gt=gt)
        try:
            return ConfigurableDistiller(named_student_recorders=self._recorders_of,
                                         distill_losses=losses, loss_forward_mappings=mappings)
        except (KeyError, TypeError) as err:
            raise type(err)(f'CollaborativeDistill: a term loss does not take the arguments '
                            f'of its term: {err}') from None

    @property
    def losses(self) -> Dict[str, nn.Module]:
        """term ('hfd', 'region_bsd', 'pixel_bsd') -> its loss (one module, both learners)."""
        return OrderedDict(self._term_losses)

    @staticmethod
    def _default_loss(term: str) -> str:
        return {'hfd': 'HFDLoss', 'region_bsd': 'RegionBSDLoss', 'pixel_bsd': 'PixelBSDLoss'}[term]

    @property
    def eval_student(self) -> str:
        return self._eval_student

    @eval_student.setter
    def eval_student(self, name: str) -> None:
        if name not in STUDENTS:
            raise ValueError(f'eval_student={name!r} is not valid; choose one of {list(STUDENTS)}')
        self._eval_student = name

    @property
    def student(self) -> nn.Module:
        """The student that ``predict`` evaluates (``eval_student``)."""
        return self.students[self.eval_student]

    def distillation_parameters(self) -> List[nn.Parameter]:
        """The trainable connectors and adapters of both students."""
        return [p for p in self.connectors.parameters() if p.requires_grad]

    @staticmethod
    def loss_owner(key: str) -> str:
        """The student whose optimizer a loss key trains: ``<student>.<task loss>`` or
        ``distill.<term>_<student>``."""
        for name in STUDENTS:
            if key.startswith(f'{name}.') or (key.startswith('distill.')
                                                and key.endswith(f'_{name}')):
                return name
        raise KeyError(f'CollaborativeDistill: the loss {key!r} belongs to no student')

    def owned_modules(self, name: str) -> nn.ModuleDict:
        """Everything student ``name``'s optimizer updates: the student and its connectors."""
        return nn.ModuleDict(dict(student=self.students[name], connectors=self.connectors[name]))

    def init_weights(self) -> None:
        # BaseModule.init_weights skips children without init_weights (a ModuleDict):
        # initialise the students (e.g. MiT's own init, pretrained backbones) explicitly.
        super().init_weights()
        for student in self.students.values():
            if hasattr(student, 'init_weights'):
                student.init_weights()

    # Forward -----------------------------------------------------------------------
    def forward(self, inputs: torch.Tensor, data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode in ('predict', 'tensor'):
            return self.student(inputs, data_samples, mode=mode)
        raise ValueError(f"mode={mode!r} is not valid; choose 'loss', 'predict' or 'tensor'")

    def _feature(self, term: str, name: str) -> torch.Tensor:
        rec, data_idx = self._feature_recorders[term][name]
        feat = rec.get_record_data(0, data_idx)
        adapter = self.connectors[name][f'{term}_adapter'] if f'{term}_adapter' in \
            self.connectors[name] else None
        return adapter(feat) if adapter is not None else feat

    def _connect(self, term: str, name: str, feat: torch.Tensor) -> torch.Tensor:
        key = f'{term}_connector'
        return self.connectors[name][key](feat) if key in self.connectors[name] else feat

    def loss(self, inputs: torch.Tensor,
             data_samples: Optional[List[BaseDataElement]] = None) -> Dict[str, torch.Tensor]:
        """All losses, keyed ``<learner>.<task loss>`` and ``distill.<term>_<learner>``;
        each key's gradient reaches only the learner's parameters (the other student's
        tensors are detached)."""
        self.refuse_cached_teacher_outputs(
            data_samples, 'its teachers are the two students, trained online, so no stored '
            'output fits')
        distill = self.distill_active
        managers = [self.distiller.manager(f'student.{s}') for s in STUDENTS] if distill else []
        losses: Dict[str, torch.Tensor] = OrderedDict()
        try:
            for manager in managers:
                manager.__enter__()
            for name in STUDENTS:
                task = self.students[name](inputs, data_samples, mode='loss')
                losses.update({f'{name}.{k}': v for k, v in task.items()})
            for manager in managers:
                manager.__exit__(None, None, None)
            if not distill:
                # Each student on its task alone; its connectors keep a zero gradient.
                for name in STUDENTS:
                    mine = OrderedDict((k, v) for k, v in losses.items() if k.startswith(f'{name}.'))
                    params = [p for p in self.connectors[name].parameters() if p.requires_grad]
                    losses.update(self.touch_distillation_parameters(mine, params))
                return self.finish_losses(losses)
            # The students' adapted features, and as learners mapped into the other's space.
            for term in self._feature_recorders:
                for name in STUDENTS:
                    feat = self._feature(term, name)
                    self.distiller.give(f'student.{name}', term, feat)
                    self.distiller.give(f'student.{name}', f'{term}_mapped',
                                        self._connect(term, name, feat))
            # The distiller scales its terms by distill_loss_scale (its loss_weight_scale).
            losses.update(self.distiller.compute_distill_losses(data_samples))
        finally:
            for manager in managers:
                manager.__exit__(None, None, None)
            self.distiller.reset()
        if self.check_finite:
            check_finite_losses(losses)
        return losses

    def train_step(self, data: Union[dict, tuple, list],
                   optim_wrapper: OptimWrapperDict) -> Dict[str, torch.Tensor]:
        """One forward of both students, then one update per student from its own losses."""
        if not isinstance(optim_wrapper, OptimWrapperDict) or set(optim_wrapper.keys()) != set(STUDENTS):
            raise TypeError(
                'CollaborativeDistill needs optim_wrapper=dict(constructor='
                "'mmkd.CollaborativeOptimWrapperConstructor', cnn=dict(optimizer=...), "
                f'vit=dict(optimizer=...)); got {type(optim_wrapper).__name__}'
                + (f' with keys {sorted(optim_wrapper.keys())}' if isinstance(optim_wrapper, OptimWrapperDict)
                   else ''))
        with optim_wrapper['cnn'].optim_context(self), optim_wrapper['vit'].optim_context(self):
            data = self.data_preprocessor(data, True)
            losses = self._run_forward(data, mode='loss')
        log_vars = OrderedDict()
        total = 0.
        for name in STUDENTS:
            mine = OrderedDict((k, v) for k, v in losses.items() if self.loss_owner(k) == name)
            parsed, logs = self.parse_losses(mine)
            # Targets are detached, so this backward reaches only `name`'s parameters.
            optim_wrapper[name].update_params(parsed)
            logs[f'{name}.loss'] = logs.pop('loss')
            log_vars.update(logs)
            total = total + parsed.detach()
        log_vars['loss'] = total
        log_vars.move_to_end('loss', last=False)
        return log_vars
