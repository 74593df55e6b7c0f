"""Losses of MGD: multi-granularity distillation for semi-supervised segmentation.

Qin, Wu, Li, Xiao, Zheng, Wang. *Multi-Granularity Distillation Scheme Towards
Lightweight Semi-Supervised Semantic Segmentation*. ECCV 2022, arXiv:2208.10169;
official code github.com/JayQine/MGD-SSSS (``exp.*/*/train.py``).

Three granularities, each a loss here, composed by ``MultiGranularityDistill``:

* pixel level: :class:`PixelConsistencyLoss` (cross-entropy against hard pseudo
  labels, i.e. a teacher's argmax);
* image level: :class:`SemanticSensitiveLoss` (L1 between globally pooled logits);
* region level: :class:`ContentAwareLoss` (MSE between cosine self-similarity
  matrices of pooled decoder features).

:class:`OhemCrossEntropyLoss` is the supervised loss of the official Cityscapes
runs (online hard example mining on the probability of the true class).
"""
from __future__ import annotations

from typing import Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from mmkd.registry import MODELS

from .utils import check_loss_args

_SEM_REDUCTIONS = ('sum', 'batchmean', 'mean')


def _check_nchw(name: str, x: torch.Tensor) -> None:
    if not torch.is_tensor(x) or x.dim() != 4:
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f'{name} must be an (N, C, H, W) tensor, got {shape}')


@MODELS.register_module()
class PixelConsistencyLoss(nn.Module):
    r"""Pixel-level consistency: cross-entropy against a teacher's hard labels.

    MGD (Qin et al., ECCV 2022), pixel-level distillation. With student logits
    :math:`z^S` and a teacher's pseudo label :math:`\hat y = \arg\max_c z^T_c` per
    pixel (for CutMix images: the teachers' logits of the two source images mixed
    with the same box mask, then the argmax):

    .. math::
        L = w\,\frac{1}{|\Omega|}\sum_{i\in\Omega} -\log \mathrm{softmax}(z^S_i)_{\hat y_i}

    where :math:`\Omega` is the set of pixels whose label is not ``ignore_index``
    (as ``nn.CrossEntropyLoss(reduction='mean', ignore_index=255)`` in the code).

    Args:
        loss_weight (float): :math:`w` (1 in the official code, for each teacher and
            for labelled and unlabelled images alike).
        ignore_index (int): label value that contributes nothing.
        allow_negative_weight (bool): accept ``loss_weight < 0``.
    """

    def __init__(self, loss_weight: float = 1.0, ignore_index: int = 255,
                 allow_negative_weight: bool = False) -> None:
        super().__init__()
        check_loss_args(self, loss_weight=loss_weight, ignore_index=ignore_index,
                        integers=('ignore_index', ), allow_negative_weight=allow_negative_weight)
        self.loss_weight = loss_weight
        self.ignore_index = ignore_index

    def forward(self, preds_S: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the student against labels or a teacher's argmax.

        Args:
            preds_S: (N, C, H, W) student logits.
            target: (N, H, W) integer labels, or (N, C, H, W) teacher logits (their
                argmax over C is taken; no gradient flows into them).
        """
        _check_nchw('preds_S', preds_S)
        if target.is_floating_point():
            _check_nchw('target', target)
            target = target.detach().argmax(dim=1)
        if target.dim() != 3 or target.shape[0] != preds_S.shape[0] \
                or target.shape[-2:] != preds_S.shape[-2:]:
            raise ValueError(f'target of shape {tuple(target.shape)} does not match preds_S '
                             f'{tuple(preds_S.shape)}: expected (N, H, W) labels or (N, C, H, W) '
                             'teacher logits at the same resolution')
        target = target.long()
        if not bool((target != self.ignore_index).any()):
            return preds_S.sum() * 0.0  # nothing to learn from (cross-entropy would be NaN)
        loss = F.cross_entropy(preds_S, target, ignore_index=self.ignore_index)
        return self.loss_weight * loss


@MODELS.register_module()
class SemanticSensitiveLoss(nn.Module):
    r"""Image-level semantic-sensitive loss: L1 between globally pooled logits.

    MGD (Qin et al., ECCV 2022), image-level distillation from the deep teacher.
    With :math:`g(z)_{n,c} = \frac{1}{HW}\sum_{h,w} z_{n,c,h,w}` (global average
    pooling of the logits, an image-level class score):

    .. math::
        L = w \sum_{n,c} \left| g(z^S)_{n,c} - g(z^T)_{n,c} \right|

    The official code takes this **sum** over batch and classes
    (``torch.sum(torch.abs(cls_logit1 - cls_logit3))``) and multiplies it by
    ``lambda_1`` (0.001 Cityscapes R18, 0.002 VOC R18, 0.0005 VOC MobileNetV2). The
    sum grows with the batch size and the number of classes; ``reduction`` makes this
    a choice: ``'sum'`` (official), ``'batchmean'`` (sum / N) or ``'mean'``
    (sum / (N C)).

    Args:
        loss_weight (float): :math:`w` (the paper's :math:`\lambda_1`).
        reduction (str): 'sum' (default, official), 'batchmean' or 'mean'.
        allow_negative_weight (bool): accept ``loss_weight < 0``.
    """

    def __init__(self, loss_weight: float = 1.0, reduction: str = 'sum',
                 allow_negative_weight: bool = False) -> None:
        super().__init__()
        check_loss_args(self, loss_weight=loss_weight, allow_negative_weight=allow_negative_weight)
        if reduction not in _SEM_REDUCTIONS:
            raise ValueError(f'reduction={reduction!r}; valid: {_SEM_REDUCTIONS}')
        self.loss_weight = loss_weight
        self.reduction = reduction

    def forward(self, preds_S: torch.Tensor, preds_T: torch.Tensor) -> torch.Tensor:
        """Args: preds_S, preds_T: (N, C, H, W) logits (H, W may differ; N, C may not)."""
        _check_nchw('preds_S', preds_S)
        _check_nchw('preds_T', preds_T)
        if preds_S.shape[:2] != preds_T.shape[:2]:
            raise ValueError(f'preds_S {tuple(preds_S.shape)} and preds_T {tuple(preds_T.shape)} '
                             'need the same batch size and number of classes')
        diff = (preds_S.mean(dim=(2, 3)) - preds_T.detach().mean(dim=(2, 3))).abs()
        loss = diff.sum()
        if self.reduction == 'batchmean':
            loss = loss / diff.shape[0]
        elif self.reduction == 'mean':
            loss = loss / diff.numel()
        return self.loss_weight * loss


def cosine_self_similarity(feat: torch.Tensor, pool_size: Union[int, Sequence[int]],
                           eps: float = 0.0) -> torch.Tensor:
    """(N, C, H, W) -> (N, P, P): cosine similarity between the P pooled positions."""
    q = F.adaptive_avg_pool2d(feat, pool_size).flatten(2)  # (N, C, P)
    norm = q.norm(p=2, dim=1)  # (N, P)
    if eps > 0:
        norm = norm.clamp_min(eps)
    sim = q.transpose(1, 2) @ q  # (N, P, P)
    return sim / norm.unsqueeze(2) / norm.unsqueeze(1)


@MODELS.register_module()
class ContentAwareLoss(nn.Module):
    r"""Region-level content-aware loss: MSE between self-similarity matrices.

    MGD (Qin et al., ECCV 2022), region-level distillation from the wide teacher.
    Decoder features :math:`F` (before the classifier) are average-pooled to
    ``pool_size`` (7x7 = P regions), giving region vectors :math:`q_1..q_P`; their
    cosine self-similarity :math:`A_{mn} = q_m^\top q_n / (\|q_m\| \|q_n\|)` is a
    P x P matrix that does not depend on the channel count, so student and teacher
    compare even with different widths:

    .. math::
        L = w\,\frac{1}{N P^2}\sum_{n,m,k} \left(A^S_{n,mk} - A^T_{n,mk}\right)^2

    (``F.mse_loss`` of the two matrices times ``lambda_2``: 100 for Cityscapes and
    VOC R18, 50 for VOC MobileNetV2.)

    Args:
        loss_weight (float): :math:`w` (the paper's :math:`\lambda_2`).
        pool_size (int | tuple): regions per side (7 in the paper).
        eps (float): lower bound of the region norms. The official code divides by
            the norms unguarded (0); a region whose pooled feature is all zero (a
            ReLU output can be) would give NaN, so the default is 1e-12, which
            changes nothing otherwise.
        allow_negative_weight (bool): accept ``loss_weight < 0``.
    """

    def __init__(self, loss_weight: float = 1.0, pool_size: Union[int, Sequence[int]] = 7,
                 eps: float = 1e-12, allow_negative_weight: bool = False) -> None:
        super().__init__()
        check_loss_args(self, loss_weight=loss_weight, eps=eps, non_negative=('eps', ),
                        allow_negative_weight=allow_negative_weight)
        sizes = tuple(pool_size) if isinstance(pool_size, (list, tuple)) else (pool_size, )
        if len(sizes) not in (1, 2):
            raise ValueError(f'ContentAwareLoss: pool_size={pool_size!r} must be an int or a pair')
        for size in sizes:
            check_loss_args(self, pool_size=size, integers=('pool_size', ), positive=('pool_size', ))
        self.loss_weight = loss_weight
        self.pool_size = pool_size
        self.eps = eps

    def forward(self, feat_S: torch.Tensor, feat_T: torch.Tensor) -> torch.Tensor:
        """Args: feat_S (N, C_s, H, W), feat_T (N, C_t, H', W'): decoder features."""
        _check_nchw('feat_S', feat_S)
        _check_nchw('feat_T', feat_T)
        if feat_S.shape[0] != feat_T.shape[0]:
            raise ValueError(f'feat_S {tuple(feat_S.shape)} and feat_T {tuple(feat_T.shape)} '
                             'need the same batch size')
        sim_s = cosine_self_similarity(feat_S.float(), self.pool_size, self.eps)
        sim_t = cosine_self_similarity(feat_T.detach().float(), self.pool_size, self.eps)
        return self.loss_weight * F.mse_loss(sim_s, sim_t)


@MODELS.register_module()
class OhemCrossEntropyLoss(nn.Module):
    r"""Cross-entropy over the hard pixels only (probability-based OHEM).

    The supervised loss of MGD's official Cityscapes runs (``ProbOhemCrossEntropy2d``
    of TorchSeg, ``thresh=0.7``, ``min_kept=50000`` per image). Let :math:`p_i` be
    the softmax probability of the true class at valid pixel i. Pixels are kept when
    :math:`p_i \le t`, where :math:`t` is ``thresh``, raised to the ``min_kept``-th
    smallest :math:`p_i` when that is larger (so at least ``min_kept`` pixels
    stay). With fewer than ``min_kept`` valid pixels all are kept. The loss is the
    mean cross-entropy over the kept pixels. Selection uses detached probabilities.

    Args:
        thresh (float): probability threshold (0.7 official).
        min_kept (int): pixels kept at least, **per image** (the official code's
            ``50000 * batch_size // world_size`` is 50000 per image).
        ignore_index (int): label that is never kept.
        loss_weight (float): scale (>= 0).
        allow_negative_weight (bool): accept ``loss_weight < 0``.
    """

    def __init__(self, thresh: float = 0.7, min_kept: int = 50000, ignore_index: int = 255,
                 loss_weight: float = 1.0, allow_negative_weight: bool = False) -> None:
        super().__init__()
        check_loss_args(self, thresh=thresh, min_kept=min_kept, ignore_index=ignore_index,
                        loss_weight=loss_weight, integers=('min_kept', 'ignore_index'),
                        allow_negative_weight=allow_negative_weight)
        if not 0.0 < thresh <= 1.0:
            raise ValueError(f'thresh must be in (0, 1], got {thresh}')
        if min_kept < 0:
            raise ValueError(f'min_kept must be >= 0, got {min_kept}')
        self.thresh = thresh
        self.min_kept = int(min_kept)
        self.ignore_index = ignore_index
        self.loss_weight = loss_weight

    def forward(self, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Args: preds (N, C, H, W) logits; target (N, H, W) labels (same H, W)."""
        _check_nchw('preds', preds)
        if target.shape != (preds.shape[0], *preds.shape[2:]):
            raise ValueError(f'target {tuple(target.shape)} does not match preds '
                             f'{tuple(preds.shape)}; resize the logits to the labels first')
        target = target.long()
        valid = target != self.ignore_index
        num_valid = int(valid.sum())
        min_kept = self.min_kept * preds.shape[0]
        kept = valid
        if 0 < num_valid and min_kept <= num_valid:
            with torch.no_grad():
                prob = preds.detach().float().softmax(dim=1)
                safe = torch.where(valid, target, torch.zeros_like(target))
                p_true = prob.gather(1, safe.unsqueeze(1)).squeeze(1)
                threshold = torch.tensor(self.thresh, device=preds.device)
                if min_kept > 0:
                    kth = p_true[valid].sort().values[min_kept - 1]
                    threshold = torch.maximum(threshold, kth)
                kept = valid & (p_true <= threshold)
        if not bool(kept.any()):
            return preds.sum() * 0.0  # no labelled pixel (cross-entropy would be NaN)
        masked = torch.where(kept, target, torch.full_like(target, self.ignore_index))
        loss = F.cross_entropy(preds, masked, ignore_index=self.ignore_index)
        return self.loss_weight * loss
