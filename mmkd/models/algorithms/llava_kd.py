"""LLaVA-KD: distil a large LLaVA-style model into a small one (MDist + RDist)."""
from __future__ import annotations

from typing import Dict, List, Optional, Union

import torch
from mmengine.structures import BaseDataElement
from torch import nn

from mmkd.registry import MODELS

from ..distillers import ConfigurableDistiller, GivenTensors
from ..teachers import TeacherPrecision, TeacherSet
from .base_algorithm import BaseAlgorithm, check_finite_losses

RDIST_SOURCES = ('logits', 'image_features')


def _build_loss(cfg: Optional[Union[dict, nn.Module]], key: str) -> Optional[nn.Module]:
    if cfg is None or isinstance(cfg, nn.Module):
        return cfg
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise TypeError(f'{key} must be a loss config dict with a "type" (or None), got {cfg!r}')
    return MODELS.build(cfg)


@MODELS.register_module()
class LlavaKDDistill(BaseAlgorithm):
    r"""LLaVA-KD (Cai et al., arXiv:2410.16236): CE + alpha MDist + beta RDist.

    Both models are :class:`~mmkd.models.task_models.LlavaModel`\ s on the same
    conversation batch; they must share the vocabulary and tokenizer (checked, the
    error names both) and the number of visual tokens per image. One step:

    1. the teacher's :meth:`forward_features` under ``torch.no_grad()`` (frozen, eval
       mode, optionally in bf16);
    2. the student's forward; ``loss_ce`` = ``ce_weight`` x next-token CE on the
       response tokens;
    3. ``distill.loss_mdist_res`` / ``distill.loss_mdist_vis``: :class:`MDistLoss`
       (KL at response / visual positions, its ``loss_weight`` is alpha);
       ``distill.loss_rdist``: :class:`RDistLoss` on the visual tokens'
       self-correlation (its ``loss_weight`` is beta).

    MDist and RDist are the losses ``loss_mdist`` (its two parts are logged as
    ``loss_mdist_res`` / ``loss_mdist_vis``) and ``loss_rdist`` of a
    :class:`~mmkd.models.distillers.ConfigurableDistiller` (``self.distiller``): the
    algorithm gives it the tensors of both ``forward_features`` (``GivenTensors``
    recorders ``logits``, ``rdist_tokens`` of both models, the student's ``labels`` and
    ``image_token_mask``). Its ``compute_in_fp32`` is off: the logits of an LLM are
    large, and MDist/RDist choose their own precision.

    The teacher is held outside the module tree (like ``SingleTeacherDistill``): it
    is in no optimizer, no DDP/FSDP bucket and no checkpoint. Which parts of the
    student train (LLaVA-KD's stage 1 trains only the projector) is the student's
    ``trainable`` setting.

    Args:
        architecture (dict | nn.Module): the student ``LlavaModel``.
        teacher (dict | nn.Module): the teacher ``LlavaModel`` (or ``dict(cfg_path=...)``).
        teacher_ckpt (str, optional): teacher weights (a checkpoint of ``tools/train.py``;
            a HF folder can instead be given as the teacher's ``pretrained``).
        teacher_ckpt_strict (bool): fail on missing/unexpected teacher keys.
        teacher_precision (str): 'fp32', 'bf16' or 'fp16' for the teacher forward.
        teacher_precision_mode (str): 'cast' (default: weights stored in the reduced
            dtype, half the memory) or 'autocast'.
        mdist (dict, optional): the :class:`MDistLoss` config (None: off).
        rdist (dict, optional): the :class:`RDistLoss` config (None: off).
        rdist_source (str): what RDist correlates: 'logits' (default: the logits at
            the visual positions, as MDist) or 'image_features' (the projected visual
            tokens entering the LLM).
        ce_weight (float): weight of the student's own CE loss.
        check_finite (bool): stop on a NaN/inf loss naming it.
        data_preprocessor (dict, optional): overrides the student's.
    """

    def __init__(self,
                 architecture: Union[dict, nn.Module],
                 teacher: Union[dict, nn.Module],
                 teacher_ckpt: Optional[str] = None,
                 teacher_ckpt_strict: bool = True,
                 teacher_precision: str = 'fp32',
                 teacher_precision_mode: str = 'cast',
                 mdist: Optional[dict] = dict(type='MDistLoss'),  # noqa: B006 (never mutated)
                 rdist: Optional[dict] = dict(type='RDistLoss'),  # noqa: B006
                 rdist_source: str = 'logits',
                 ce_weight: float = 1.0,
                 check_finite: bool = True,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(architecture, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if rdist_source not in RDIST_SOURCES:
            raise ValueError(f'LlavaKDDistill.rdist_source={rdist_source!r}; valid: {RDIST_SOURCES}')
        self.rdist_source, self.ce_weight, self.check_finite = rdist_source, ce_weight, check_finite
        try:
            self.distiller = self._build_distiller(_build_loss(mdist, 'LlavaKDDistill.mdist'),
                                                   _build_loss(rdist, 'LlavaKDDistill.rdist'))
        except (KeyError, TypeError) as err:
            # the distiller names its internal mapping; say which config key and what
            # the loss's forward must take
            msg = str(err).strip('"\'')
            key = 'rdist' if 'loss_rdist' in msg else 'mdist'
            takes = ('s_tokens, t_tokens' if key == 'rdist' else
                     's_logits, t_logits, labels, image_token_mask, return_parts')
            raise type(err)(f'LlavaKDDistill.{key}: its loss forward must take ({takes}); '
                            f'{msg}') from None

        self.teacher_precision = TeacherPrecision(teacher_precision, teacher_precision_mode)
        # A TeacherSet hides the teacher from nn.Module registration (see SingleTeacherDistill).
        self.teacher_set = TeacherSet(self.teacher_precision, owner=type(self).__name__)
        pretrained = getattr(teacher, 'pretrained', None) or (
            isinstance(teacher, dict) and teacher.get('pretrained'))
        # init_weights=False: the LLaVA model initialises itself when built (transformers).
        teacher_model = self.teacher_set.add(
            'teacher', teacher, teacher_ckpt, key='teacher', strict=teacher_ckpt_strict,
            init_weights=False, missing_ckpt_warning=None if pretrained else
            'LlavaKDDistill: no teacher_ckpt (nor teacher pretrained) given, the teacher keeps '
            'random weights (fine for tests, wrong for training)')
        for name, model in (('teacher', teacher_model), ('architecture', self.architecture)):
            if not hasattr(model, 'forward_features'):
                raise TypeError(f'LlavaKDDistill.{name} must be a LlavaModel (with forward_features), '
                                f'got {type(model).__name__}')
        from ..task_models.llava import check_same_vocabulary
        check_same_vocabulary(teacher_model, self.architecture)
        if teacher_model.num_image_tokens != self.architecture.num_image_tokens:
            raise ValueError(
                'LlavaKDDistill: teacher and student must produce the same number of visual tokens '
                f'per image (teacher {teacher_model.num_image_tokens}, architecture '
                f'{self.architecture.num_image_tokens}): MDist and RDist compare them token by token')
        # `distillation_stopped` (StopDistillHook) is BaseAlgorithm's persistent buffer.

    @staticmethod
    def _build_distiller(mdist: Optional[nn.Module],
                         rdist: Optional[nn.Module]) -> ConfigurableDistiller:
        """MDist and RDist (each optional) as the distiller's losses, on given tensors."""
        losses, mappings = {}, {}
        if mdist is not None:
            losses['loss_mdist'] = mdist
            mappings['loss_mdist'] = dict(
                s_logits=dict(from_student=True, recorder='logits'),
                t_logits=dict(from_student=False, recorder='logits'),
                labels=dict(from_student=True, recorder='labels'),
                image_token_mask=dict(from_student=True, recorder='image_token_mask'),
                return_parts=dict(value=True))  # logged as loss_mdist_res, loss_mdist_vis
        if rdist is not None:
            losses['loss_rdist'] = rdist
            mappings['loss_rdist'] = dict(
                s_tokens=dict(from_student=True, recorder='rdist_tokens'),
                t_tokens=dict(from_student=False, recorder='rdist_tokens'))
        return ConfigurableDistiller(
            student_recorders={k: GivenTensors(f'student {k}') for k in
                               ('logits', 'labels', 'image_token_mask', 'rdist_tokens')},
            teacher_recorders={k: GivenTensors(f'teacher {k}') for k in ('logits', 'rdist_tokens')},
            distill_losses=losses, loss_forward_mappings=mappings, compute_in_fp32=False)

    @property
    def mdist(self) -> Optional[nn.Module]:
        """The MDist loss (None: off)."""
        return self.distiller.distill_losses['loss_mdist'] \
            if 'loss_mdist' in self.distiller.distill_losses else None

    @property
    def rdist(self) -> Optional[nn.Module]:
        """The RDist loss (None: off)."""
        return self.distiller.distill_losses['loss_rdist'] \
            if 'loss_rdist' in self.distiller.distill_losses else None

    @property
    def teacher(self) -> nn.Module:
        return self.teacher_set['teacher']

    def _rdist_tokens(self, feats: Dict[str, torch.Tensor]) -> torch.Tensor:
        if self.rdist_source == 'image_features':
            return feats['image_features']
        from ..losses.llava_kd_losses import select_visual_tokens
        shift = getattr(self.mdist, 'visual_shift', True)
        return select_visual_tokens(feats['logits'], feats['image_token_mask'], shift)

    def loss(self, inputs: dict, data_samples: Optional[List[BaseDataElement]] = None
             ) -> Dict[str, torch.Tensor]:
        from ..task_models.llava import causal_lm_loss
        self.refuse_cached_teacher_outputs(
            data_samples, 'MDist and RDist read the teacher\'s logits at every position of the '
            'conversation, which no cache of tools/cache_teacher.py stores')
        distill = self.distill_active and (self.mdist is not None or self.rdist is not None)
        if distill:
            device = inputs['input_ids'].device
            teacher = self.teacher_set.ready('teacher', device)  # FSDP leaves it where it was
            with self.teacher_set.forward_context(device):
                t = teacher.forward_features(self.teacher_precision.cast_inputs(inputs))
        s = self.architecture.forward_features(inputs)
        losses = {'loss_ce': self.ce_weight * causal_lm_loss(s['logits'], s['labels'])}
        if not distill:
            losses = self.touch_distillation_parameters(losses)  # DDP/FSDP: see the method
            return self.finish_losses(losses)  # distill_loss_scale, check_finite
        d = self.distiller
        try:
            if self.mdist is not None:
                for key in ('logits', 'labels', 'image_token_mask'):
                    d.give('student', key, s[key])
                d.give('teacher', 'logits', t['logits'])
            if self.rdist is not None:
                d.give('student', 'rdist_tokens', self._rdist_tokens(s))
                d.give('teacher', 'rdist_tokens', self._rdist_tokens(t))
            # the distiller applies distill_loss_scale (its loss_weight_scale)
            losses.update(d.compute_distill_losses(data_samples))
        finally:
            d.reset()
        if self.check_finite:
            check_finite_losses(losses)
        return losses
