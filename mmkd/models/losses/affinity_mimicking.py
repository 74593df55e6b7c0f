"""TinyCLIP's affinity-mimicking loss (Wu et al., ICCV 2023) and the CLIP contrastive loss."""
from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from mmkd.registry import MODELS

from .utils import check_loss_args

Scale = Union[float, torch.Tensor]


def dist_info() -> Tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` when torch.distributed is not initialised."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_batch(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` (N, ...) from every rank along dim 0, in rank order.

    The local slice is ``x`` itself, so gradients flow into this rank's part; the
    other ranks' slices are constants here (each rank back-propagates its own part,
    and DDP averages the gradients). In a single process (torch.distributed not
    initialised, or one rank) ``x`` is returned unchanged: no communication at all.
    Every rank must pass the same N (drop the last incomplete batch).
    """
    rank, world = dist_info()
    if world == 1:
        return x
    import torch.distributed as dist
    parts = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(parts, x.detach().contiguous())
    parts[rank] = x
    return torch.cat(parts, dim=0)


def _as_scale(value: Optional[Scale], fallback: Optional[Scale], name: str) -> Scale:
    if value is not None:
        return value
    if fallback is None:
        raise ValueError(f'AffinityMimickingLoss: {name} is None and no {name} tensor was '
                         'passed to forward; give a number in the config or map the model\'s '
                         'logit scale (e.g. the OpenCLIPModel recorder source "scale_tap")')
    return fallback.reshape(()) if torch.is_tensor(fallback) else fallback


def clip_contrastive_loss(img: torch.Tensor, text: torch.Tensor, logit_scale: Scale) -> torch.Tensor:
    r"""CLIP's symmetric InfoNCE loss on L2-normalised features (Radford et al., 2021).

    .. math::
        L = \tfrac12\big(\mathrm{CE}(s\,\hat I \hat T_{all}^\top, y)
            + \mathrm{CE}(s\,\hat T \hat I_{all}^\top, y)\big)

    Rows are this rank's pairs, columns the batch gathered from all ranks
    (:func:`gather_batch`); the target of local row ``i`` is column
    ``rank * N + i``.
    """
    img, text = F.normalize(img, dim=-1), F.normalize(text, dim=-1)
    rank, _ = dist_info()
    labels = torch.arange(img.shape[0], device=img.device) + rank * img.shape[0]
    logits_i2t = logit_scale * img @ gather_batch(text).t()
    logits_t2i = logit_scale * text @ gather_batch(img).t()
    return 0.5 * (F.cross_entropy(logits_i2t, labels) + F.cross_entropy(logits_t2i, labels))


@MODELS.register_module()
class AffinityMimickingLoss(nn.Module):
    r"""Match the student's image-text affinities to the teacher's (TinyCLIP).

    "TinyCLIP: CLIP Distillation via Affinity Mimicking and Weight Inheritance",
    Wu et al., ICCV 2023 (arXiv:2309.12314), Sec. 3.1.

    With L2-normalised features :math:`\hat I, \hat T` and a logit scale :math:`s`
    (the inverse temperature), the image-to-text and text-to-image affinities are
    softmax distributions over the batch:

    .. math::
        A_{I2T}(i, j) = \frac{\exp(s\,\hat I_i\cdot\hat T_j)}{\sum_k \exp(s\,\hat I_i\cdot\hat T_k)},\qquad
        A_{T2I}(i, j) = \frac{\exp(s\,\hat T_i\cdot\hat I_j)}{\sum_k \exp(s\,\hat T_i\cdot\hat I_k)}

    computed with the student's scale :math:`s_S` for the student and the teacher's
    :math:`s_T` for the teacher. Each direction is the cross-entropy from the
    teacher's affinities to the student's, averaged over rows:

    .. math::
        L_{I2T} = -\frac1N\sum_i\sum_j A^T_{I2T}(i,j)\,\log A^S_{I2T}(i,j)

    and :math:`L_{T2I}` alike. The loss is

    .. math::
        L = w\Big(\alpha\,\tfrac12 (L_{I2T} + L_{T2I}) + (1-\alpha)\,L_{CLIP}\Big)

    where :math:`L_{CLIP}` is the student's own contrastive loss
    (:func:`clip_contrastive_loss`); TinyCLIP's released training uses
    :math:`\alpha=1` (affinity mimicking only). The paper writes
    :math:`L_{I2T}+L_{T2I}`; the released code averages the two, as here (a
    constant factor).

    Logit scales: by default each model's own learned ``exp(logit_scale)`` is used
    (``logit_scale_S``/``logit_scale_T`` arguments). TinyCLIP's training scripts fix
    both to 50 (``--logit-scale 50``): pass ``student_logit_scale=50.,
    teacher_logit_scale=50.``. A number given here overrides the forwarded tensor.

    Batch: rows are this rank's samples, columns the batch gathered from all ranks
    (with gradient for the local slice); a single process needs no gather.
    Student and teacher embedding widths may differ (only N x N affinities are
    compared). Teacher inputs are detached.

    Args:
        alpha (float): share of affinity mimicking; ``1 - alpha`` goes to the
            student's contrastive loss. In [0, 1].
        student_logit_scale (float, optional): fixed :math:`s_S`.
        teacher_logit_scale (float, optional): fixed :math:`s_T`.
        loss_weight (float): :math:`w` (>= 0).
        allow_negative_weight (bool): accept ``loss_weight < 0``.
    """

    def __init__(self,
                 alpha: float = 1.0,
                 student_logit_scale: Optional[float] = None,
                 teacher_logit_scale: Optional[float] = None,
                 loss_weight: float = 1.0,
                 allow_negative_weight: bool = False) -> None:
        super().__init__()
        check_loss_args(self, alpha=alpha, student_logit_scale=student_logit_scale,
                        teacher_logit_scale=teacher_logit_scale, loss_weight=loss_weight,
                        optional=('student_logit_scale', 'teacher_logit_scale'),
                        allow_negative_weight=allow_negative_weight)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f'AffinityMimickingLoss: alpha={alpha} must be in [0, 1]')
        for name, value in (('student_logit_scale', student_logit_scale),
                            ('teacher_logit_scale', teacher_logit_scale)):
            if value is not None and value <= 0:
                raise ValueError(f'AffinityMimickingLoss: {name}={value} must be > 0 (it is '
                                 'exp(logit_scale), the inverse temperature)')
        self.alpha = alpha
        self.student_logit_scale = student_logit_scale
        self.teacher_logit_scale = teacher_logit_scale
        self.loss_weight = loss_weight

    @staticmethod
    def _soft_ce(logits_s: torch.Tensor, logits_t: torch.Tensor) -> torch.Tensor:
        target = F.softmax(logits_t, dim=-1)
        return -(target * F.log_softmax(logits_s, dim=-1)).sum(dim=-1).mean()

    def affinity_losses(self, img_S, text_S, img_T, text_T, scale_S, scale_T):
        """Return ``(L_I2T, L_T2I)`` before weighting."""
        img_S, text_S = F.normalize(img_S, dim=-1), F.normalize(text_S, dim=-1)
        img_T, text_T = F.normalize(img_T.detach(), dim=-1), F.normalize(text_T.detach(), dim=-1)
        if torch.is_tensor(scale_T):
            scale_T = scale_T.detach()
        i2t = self._soft_ce(scale_S * img_S @ gather_batch(text_S).t(),
                            scale_T * img_T @ gather_batch(text_T).t())
        t2i = self._soft_ce(scale_S * text_S @ gather_batch(img_S).t(),
                            scale_T * text_T @ gather_batch(img_T).t())
        return i2t, t2i

    def forward(self,
                img_S: torch.Tensor,
                text_S: torch.Tensor,
                img_T: torch.Tensor,
                text_T: torch.Tensor,
                logit_scale_S: Optional[torch.Tensor] = None,
                logit_scale_T: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Affinity-mimicking loss of one batch.

        Args:
            img_S (N, D_S), text_S (N, D_S): student image / text embeddings of the
                N pairs of this rank (normalised here).
            img_T (N, D_T), text_T (N, D_T): teacher embeddings of the same pairs.
            logit_scale_S, logit_scale_T: the models' ``exp(logit_scale)`` (scalars);
                needed unless fixed in the constructor.
        """
        if img_S.shape[0] != text_S.shape[0] or img_T.shape[0] != img_S.shape[0] \
                or text_T.shape[0] != img_S.shape[0]:
            raise ValueError('AffinityMimickingLoss: image and text batches must pair up; got '
                             f'img_S {tuple(img_S.shape)}, text_S {tuple(text_S.shape)}, '
                             f'img_T {tuple(img_T.shape)}, text_T {tuple(text_T.shape)}')
        scale_S = _as_scale(self.student_logit_scale, logit_scale_S, 'student_logit_scale')
        scale_T = _as_scale(self.teacher_logit_scale, logit_scale_T, 'teacher_logit_scale')
        loss = img_S.new_zeros(())
        if self.alpha > 0:
            i2t, t2i = self.affinity_losses(img_S, text_S, img_T, text_T, scale_S, scale_T)
            loss = loss + self.alpha * 0.5 * (i2t + t2i)
        if self.alpha < 1:
            loss = loss + (1 - self.alpha) * clip_contrastive_loss(img_S, text_S, scale_S)
        return self.loss_weight * loss
