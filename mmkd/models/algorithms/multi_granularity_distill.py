"""Semi-supervised segmentation distillation from a wide and a deep teacher (MGD).

Qin, Wu, Li, Xiao, Zheng, Wang. *Multi-Granularity Distillation Scheme Towards
Lightweight Semi-Supervised Semantic Segmentation*. ECCV 2022, arXiv:2208.10169;
official code github.com/JayQine/MGD-SSSS.
"""
from __future__ import annotations

import copy
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.structures import BaseDataElement
from torch import nn

from mmkd.registry import MODELS

from ..preprocessors.semi_supervised_data_preprocessor import SemiSupervisedDataPreprocessor
from ..recorders import ModuleOutputs
from ..teachers import TeacherSet
from ..utils.cutmix import BoxMaskGenerator, cutmix
from .base_algorithm import BaseAlgorithm

TEACHERS = ('wide', 'deep')
#: the official Cityscapes ResNet-18 weights (lambda_1 = 0.001, lambda_2 = 100)
DEFAULT_LOSS_PIXEL = dict(type='PixelConsistencyLoss', loss_weight=1.0)
DEFAULT_LOSS_SEMANTIC = dict(type='SemanticSensitiveLoss', loss_weight=0.001, reduction='sum')
DEFAULT_LOSS_CONTENT = dict(type='ContentAwareLoss', loss_weight=100.0, pool_size=7)
_CUTMIX_KEYS = ('prop_range', 'n_boxes', 'random_aspect_ratio', 'prop_by_area', 'within_bounds',
                'invert')


def _build_loss(cfg: Optional[Union[dict, nn.Module]], key: str) -> Optional[nn.Module]:
    if cfg is None or isinstance(cfg, nn.Module):
        return cfg
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise TypeError(f"{key} must be None or a loss dict with 'type', got {cfg!r}")
    try:
        return MODELS.build(copy.deepcopy(cfg))
    except (KeyError, TypeError) as err:
        raise type(err)(f'{key}: {err}') from None


@MODELS.register_module()
class MultiGranularityDistill(BaseAlgorithm):
    """MGD: a light student learns from labelled and unlabelled images and two teachers.

    Two frozen teachers, a **wide** one (official: DeepLabV3+ on a wide ResNet) and
    a **deep** one (DeepLabV3+ on ResNet-101), both mmseg segmenters, supervise
    one student. Every training step reads a labelled batch (images + labels) and
    two unlabelled batches ``u0``, ``u1`` (no labels; see
    ``SemiSupervisedSegDataset``) and, as the official ``train.py`` does:

    1. draws CutMix box masks ``M`` and mixes ``x_mix = u0 (1 - M) + u1 M``;
    2. runs both teachers (no grad, eval mode) on ``u0``, ``u1``, ``x_mix`` and
       the labelled images; a teacher's pseudo label on ``x_mix`` is the argmax of
       its logits on ``u0`` and ``u1`` mixed with the same ``M``;
    3. pixel level (``loss_pixel``, :class:`PixelConsistencyLoss`): cross-entropy of
       the student on ``x_mix`` against each teacher's pseudo label, and of the
       student on the labelled images against each teacher's argmax there;
    4. image level (``loss_semantic``, :class:`SemanticSensitiveLoss`): L1 between
       the globally pooled logits of the student and the **deep** teacher on
       ``x_mix``;
    5. region level (``loss_content``, :class:`ContentAwareLoss`): MSE between the
       cosine self-similarity matrices of the 7x7-pooled decoder features of the
       student and the **wide** teacher on ``x_mix``;
    6. supervised loss on the labelled images: the student's own decode-head
       losses (``sup_loss=None``, mmseg's CE, or OHEM through the head's
       ``sampler``), or ``sup_loss`` (e.g. :class:`OhemCrossEntropyLoss`) on the
       student's logits resized to the labels.

    All logits are bilinearly resized to the input size before the pixel and
    image losses (the official networks output input-size logits). Losses are
    logged as the student's own (``decode.loss_ce``, ...; ``loss_seg`` with
    ``sup_loss``) plus
    ``distill.loss_pixel_{unlab,lab}_{wide,deep}``, ``distill.loss_semantic`` and
    ``distill.loss_content``; a loss set to None is skipped (ablations). Once
    ``StopDistillHook`` sets ``distillation_stopped``, a step is the supervised loss
    on the labelled batch alone (no CutMix draw, no teacher forward).

    Teachers are frozen (``requires_grad=False``), always in eval mode, run under
    ``torch.no_grad()`` and are held outside the module tree (as in
    ``SingleTeacherDistill``): absent from ``parameters()`` (so from the optimizer
    and DDP), ``state_dict()`` (so from checkpoints; rebuilt from their
    checkpoints on resume), and moved by ``.to()`` through :meth:`_apply`. They
    read the student's normalised inputs, so they must share its normalisation.

    Args:
        architecture (dict | nn.Module): the student (an mmseg segmenter).
        wide_teacher (dict | nn.Module): the wide teacher (model dict or
            ``dict(cfg_path=...)``).
        deep_teacher (dict | nn.Module): the deep teacher.
        wide_teacher_ckpt (str, optional): path of the wide teacher's weights.
        deep_teacher_ckpt (str, optional): path of the deep teacher's weights.
        teacher_ckpt_strict (bool): fail on missing/unexpected checkpoint keys.
        logits_source (str): module path of the logits in student and teachers.
        student_feat_source (str): module path of the student's decoder feature
            (the input of the classifier; ``'decode_head.sep_bottleneck'`` for
            DeepLabV3+, ``'decode_head.conv_cat'`` for an FCN head with
            ``concat_input``, ``'decode_head.convs'`` without).
        teacher_feat_source (str, optional): the same in the wide teacher
            (default: ``student_feat_source``).
        loss_pixel (dict, optional): pixel-level loss (default
            ``PixelConsistencyLoss``, weight 1).
        loss_semantic (dict, optional): image-level loss.
        loss_content (dict, optional): region-level loss.
        sup_loss (dict, optional): supervised loss on resized student logits;
            None uses the student's own losses (``mode='loss'``).
        labelled_consistency (bool): also the pixel loss on labelled images
            (official: yes).
        cutmix (dict): ``BoxMaskGenerator`` arguments (official: prop_range
            (0.25, 0.5), 3 boxes, random aspect ratio, by area, within bounds,
            inverted).
        align_corners (bool, optional): of the logit resizing (default: the
            student's ``decode_head.align_corners``, else False).
        check_finite (bool): raise on a NaN/inf loss before the optimizer step.
        data_preprocessor (dict, optional): overrides the student's (it is then
            wrapped by :class:`SemiSupervisedDataPreprocessor`).
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 architecture: Union[dict, nn.Module],
                 wide_teacher: Union[dict, nn.Module],
                 deep_teacher: Union[dict, nn.Module],
                 wide_teacher_ckpt: Optional[str] = None,
                 deep_teacher_ckpt: Optional[str] = None,
                 teacher_ckpt_strict: bool = True,
                 logits_source: str = 'decode_head.conv_seg',
                 student_feat_source: str = 'decode_head.sep_bottleneck',
                 teacher_feat_source: Optional[str] = None,
                 loss_pixel: Optional[dict] = DEFAULT_LOSS_PIXEL,
                 loss_semantic: Optional[dict] = DEFAULT_LOSS_SEMANTIC,
                 loss_content: Optional[dict] = DEFAULT_LOSS_CONTENT,
                 sup_loss: Optional[dict] = None,
                 labelled_consistency: bool = True,
                 cutmix: Optional[dict] = None,
                 align_corners: Optional[bool] = None,
                 check_finite: bool = True,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(architecture, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.data_preprocessor = SemiSupervisedDataPreprocessor(self.data_preprocessor)
        self.check_finite = check_finite
        self.labelled_consistency = labelled_consistency

        # A TeacherSet hides the teachers from nn.Module registration (see class docstring).
        self.teacher_set = TeacherSet(owner=type(self).__name__)
        for name, cfg, ckpt in (('wide', wide_teacher, wide_teacher_ckpt),
                                ('deep', deep_teacher, deep_teacher_ckpt)):
            key = f'{name}_teacher'
            self.teacher_set.add(
                name, cfg, ckpt, key=key, strict=teacher_ckpt_strict,
                missing_ckpt_warning=f'MultiGranularityDistill: no {key}_ckpt given, the {name} '
                'teacher keeps its initial weights (fine for tests, wrong for real training)')
        teachers = self.teacher_set.as_dict()
        self._check_normalisation(teachers)

        self.loss_pixel = _build_loss(loss_pixel, 'loss_pixel')
        self.loss_semantic = _build_loss(loss_semantic, 'loss_semantic')
        self.loss_content = _build_loss(loss_content, 'loss_content')
        self.sup_loss = _build_loss(sup_loss, 'sup_loss')

        cutmix = dict(cutmix or {})
        unknown = sorted(set(cutmix) - set(_CUTMIX_KEYS))
        if unknown:
            raise KeyError(f'cutmix: unknown keys {unknown}; valid: {list(_CUTMIX_KEYS)}')
        self.mask_generator = BoxMaskGenerator(**cutmix)

        if align_corners is None:
            head = getattr(self.architecture, 'decode_head', None)
            align_corners = bool(getattr(head, 'align_corners', False))
        self.align_corners = align_corners

        # Recorders: logits everywhere, decoder features of the student and the wide
        # teacher (only needed when the content loss is on).
        self.student_logits = self._recorder(self.architecture, logits_source, 'logits_source')
        self.teacher_logits = {n: self._recorder(t, logits_source, f'logits_source ({n} teacher)')
                               for n, t in teachers.items()}
        self.student_feat = self.wide_feat = None
        if self.loss_content is not None:
            self.student_feat = self._recorder(self.architecture, student_feat_source,
                                               'student_feat_source')
            self.wide_feat = self._recorder(teachers['wide'],
                                            teacher_feat_source or student_feat_source,
                                            'teacher_feat_source')

    # Building -----------------------------------------------------------------------
    def _check_normalisation(self, teachers: Dict[str, nn.Module]) -> None:
        student_pp = self.data_preprocessor.preprocessor
        for name, teacher in teachers.items():
            teacher_pp = getattr(teacher, 'data_preprocessor', None)
            for attr in ('mean', 'std'):
                a, b = getattr(student_pp, attr, None), getattr(teacher_pp, attr, None)
                if torch.is_tensor(a) and torch.is_tensor(b) and (
                        a.shape != b.shape or not torch.allclose(a.float(), b.float())):
                    raise ValueError(
                        f'{name}_teacher normalises inputs with {attr}={b.flatten().tolist()} but '
                        f'the student with {a.flatten().tolist()}; the teachers read the '
                        "student's inputs, so give them the same data_preprocessor")

    @staticmethod
    def _recorder(model: nn.Module, source: str, key: str) -> ModuleOutputs:
        recorder = ModuleOutputs(source)
        try:
            recorder.prepare_from_model(model)
        except ValueError as err:
            raise ValueError(f'{key}: {err}') from None
        return recorder

    # The hidden teachers --------------------------------------------------------------
    @property
    def teachers(self) -> Dict[str, nn.Module]:
        return self.teacher_set.as_dict()

    # Forward pieces --------------------------------------------------------------------
    def _resize(self, logits: torch.Tensor, size) -> torch.Tensor:
        if tuple(logits.shape[-2:]) == tuple(size):
            return logits
        return F.interpolate(logits, size=tuple(size), mode='bilinear',
                             align_corners=self.align_corners)

    @staticmethod
    def _take(recorder: Optional[ModuleOutputs], what: str) -> torch.Tensor:
        value = recorder.get_record_data(-1)
        recorder.reset_data_buffer()
        if not torch.is_tensor(value):
            raise TypeError(f'{what} ({recorder.source!r}) produced a {type(value).__name__}, '
                            'not a tensor; point it at a module that outputs one')
        return value

    @torch.no_grad()
    def teacher_outputs(self, name: str, batches: Sequence[torch.Tensor],
                        feat_of: Optional[int] = None) -> Dict[str, object]:
        """Logits of teacher ``name`` on each batch (one forward on their concatenation).

        Teachers are in eval mode, so batching changes nothing. Returns
        ``dict(logits=[per batch, input size], feat=<decoder feature of batch
        feat_of> or None)``.
        """
        teacher = self.teacher_set.ready(name, batches[0].device)
        sizes = [b.shape[0] for b in batches]
        shapes = {tuple(b.shape[-2:]) for b in batches}
        record_feat = feat_of is not None and name == 'wide' and self.wide_feat is not None
        recorders = [self.teacher_logits[name]] + ([self.wide_feat] if record_feat else [])
        groups = [list(batches)] if len(shapes) == 1 else [[b] for b in batches]
        logits, feats = [], []
        for group in groups:
            for r in recorders:
                r.start_recording()
            try:
                teacher(torch.cat(group), None, mode='tensor')
            finally:
                for r in recorders:
                    r.stop_recording()
            out = self._take(self.teacher_logits[name], f'logits_source of the {name} teacher')
            logits.extend(out.split([g.shape[0] for g in group]))
            if record_feat:
                feats.extend(self._take(self.wide_feat, 'teacher_feat_source').split(
                    [g.shape[0] for g in group]))
        logits = [self._resize(lg, b.shape[-2:]) for lg, b in zip(logits, batches)]
        assert [lg.shape[0] for lg in logits] == sizes
        return dict(logits=logits, feat=feats[feat_of] if record_feat else None)

    def _student_tensor(self, inputs: torch.Tensor):
        recorders = [self.student_logits] + ([self.student_feat] if self.student_feat else [])
        for r in recorders:
            r.start_recording()
        try:
            self.architecture(inputs, None, mode='tensor')
        finally:
            for r in recorders:
                r.stop_recording()
        logits = self._take(self.student_logits, 'logits_source')
        feat = self._take(self.student_feat, 'student_feat_source') if self.student_feat else None
        return logits, feat

    def _supervised(self, inputs: torch.Tensor, data_samples) -> tuple:
        self.student_logits.start_recording()
        try:
            if self.sup_loss is None:
                losses = dict(self.architecture(inputs, data_samples, mode='loss'))
            else:
                self.architecture(inputs, None, mode='tensor')
                losses = {}
        finally:
            self.student_logits.stop_recording()
        # The decode head's classifier runs once per forward (the auxiliary head has
        # its own), so the last record is the decode head's logits.
        logits = self._take(self.student_logits, 'logits_source')
        if self.sup_loss is not None:
            if not data_samples or any('gt_sem_seg' not in s for s in data_samples):
                raise ValueError('sup_loss needs labelled data samples with gt_sem_seg')
            labels = torch.stack([s.gt_sem_seg.data.squeeze(0) for s in data_samples]).long()
            losses['loss_seg'] = self.sup_loss(self._resize(logits, labels.shape[-2:]), labels)
        return losses, logits

    @torch.no_grad()
    def teacher_targets(self, u0: torch.Tensor, u1: torch.Tensor, mixed: torch.Tensor,
                        mask: torch.Tensor, labelled: torch.Tensor) -> Dict[str, dict]:
        """Everything the teachers contribute to one step (no grad, eval mode).

        Returns ``dict(pseudo={name: (N, H, W) labels on mixed}, mixed={name:
        dict(logits, feat)}, labelled={name: logits on the labelled images})``. A
        pseudo label is the argmax of the teacher's logits on ``u0`` and ``u1``,
        mixed with the same ``mask`` as the images (a 0/1 mask makes mixing logits
        or probabilities the same), so at each pixel it is the teacher's prediction
        on the source image that pixel came from.
        """
        pseudo, t_mix, t_lab = {}, {}, {}
        for name in TEACHERS:
            out = self.teacher_outputs(name, [u0, u1, mixed, labelled], feat_of=2)
            lg_u0, lg_u1, lg_mix, lg_lab = out['logits']
            pseudo[name] = cutmix(lg_u0, lg_u1, mask).argmax(dim=1)
            t_mix[name] = dict(logits=lg_mix, feat=out['feat'])
            t_lab[name] = lg_lab
        return dict(pseudo=pseudo, mixed=t_mix, labelled=t_lab)

    # The step -------------------------------------------------------------------------
    def loss(self,
             inputs: torch.Tensor,
             data_samples: Optional[List[BaseDataElement]] = None,
             unlabelled_inputs: Optional[Sequence[torch.Tensor]] = None) -> Dict[str, torch.Tensor]:
        self.refuse_cached_teacher_outputs(
            data_samples, 'the teachers read CutMix images mixed with boxes drawn at each '
            'step, so no stored output fits')
        if not self.distill_active:
            # The student on the labelled batch alone: no CutMix, no teacher forward.
            losses, _ = self._supervised(inputs, data_samples)
            losses = self.touch_distillation_parameters(losses)  # DDP: see the method
            return self.finish_losses(losses)
        if unlabelled_inputs is None or len(unlabelled_inputs) < 2:
            raise ValueError('MultiGranularityDistill needs two unlabelled batches per step '
                             '(unlabelled_inputs); build train_dataloader.dataset with '
                             'SemiSupervisedSegDataset(num_unlabelled=2)')
        u0, u1 = unlabelled_inputs[0], unlabelled_inputs[1]
        if u0.shape != u1.shape:
            raise ValueError(f'the two unlabelled batches differ in shape: {tuple(u0.shape)} vs '
                             f'{tuple(u1.shape)}; crop unlabelled images to one size')
        size = u0.shape[-2:]
        mask = self.mask_generator(u0.shape[0], size, device=u0.device)
        mixed = cutmix(u0, u1, mask)
        targets = self.teacher_targets(u0, u1, mixed, mask, inputs)
        pseudo, t_mix, t_lab = targets['pseudo'], targets['mixed'], targets['labelled']

        losses: Dict[str, torch.Tensor] = {}
        s_mix, s_feat = self._student_tensor(mixed)
        s_mix = self._resize(s_mix, size)
        if self.loss_pixel is not None:
            for name in TEACHERS:
                losses[f'distill.loss_pixel_unlab_{name}'] = self.loss_pixel(s_mix, pseudo[name])
        if self.loss_semantic is not None:
            losses['distill.loss_semantic'] = self.loss_semantic(s_mix, t_mix['deep']['logits'])
        if self.loss_content is not None:
            losses['distill.loss_content'] = self.loss_content(s_feat, t_mix['wide']['feat'])

        sup, s_lab = self._supervised(inputs, data_samples)
        losses.update(sup)
        if self.loss_pixel is not None and self.labelled_consistency:
            s_lab = self._resize(s_lab, inputs.shape[-2:])
            for name in TEACHERS:
                losses[f'distill.loss_pixel_lab_{name}'] = self.loss_pixel(
                    s_lab, t_lab[name].argmax(dim=1))
        return self.finish_losses(losses)  # distill_loss_scale, check_finite
