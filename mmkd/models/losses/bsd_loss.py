"""Bidirectional selective distillation (BSD): region-wise and pixel-wise.

Zhu, Luo, Zheng, Wang, Wang. *A Good Student is Cooperative and Reliable:
CNN-Transformer Collaborative Learning for Semantic Segmentation*. ICCV 2023,
arXiv:2307.12574.

Both losses are written for one direction: a *learner* student and the other
student acting as *teacher* of the term. The teacher's tensors are detached and the
selection (which regions / pixels transfer) is computed without gradient, so the
teacher never receives a gradient from a term where it teaches.
:class:`~mmkd.models.algorithms.CollaborativeDistill` calls each loss in both
directions; a region or pixel is transferred in at most one direction.
"""
from __future__ import annotations

import math
from typing import Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from mmkd.registry import MODELS

from .utils import check_loss_args


def _pair(value: Union[int, Sequence[int]], name: str) -> Tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or any(int(v) != v or v < 1 for v in pair):
        raise ValueError(f'{name} must be a positive int or a pair of them, got {value!r}')
    return int(pair[0]), int(pair[1])


def _labels(gt: torch.Tensor) -> torch.Tensor:
    """(N, H, W) or (N, 1, H, W) integer labels -> (N, H, W) long."""
    if gt.dim() == 4 and gt.shape[1] == 1:
        gt = gt[:, 0]
    if gt.dim() != 3:
        raise ValueError(f'ground truth must be (N, H, W) or (N, 1, H, W), got {tuple(gt.shape)}')
    return gt.long()


def logits_at_labels(logits: torch.Tensor, gt: torch.Tensor, align_corners: bool = False) -> torch.Tensor:
    """Bilinearly resize (N, K, h, w) logits to the label size, as mmseg's losses do."""
    if logits.dim() != 4:
        raise ValueError(f'logits must be (N, K, H, W), got {tuple(logits.shape)}')
    if logits.shape[-2:] != gt.shape[-2:]:
        logits = F.interpolate(logits, size=gt.shape[-2:], mode='bilinear', align_corners=align_corners)
    return logits


def region_grid(label_size: Sequence[int], region_size: Tuple[int, int]) -> Tuple[int, int]:
    """Number of regions along (H, W): ``G = ceil(label size / region size)``.

    The regions are the cells of ``F.adaptive_avg_pool2d`` to this ``G_h x G_w``
    grid, so ``region_size`` is an upper bound, not the exact cell size. Along a side
    of ``H`` label pixels, cell ``i`` spans rows ``floor(i H / G)`` to
    ``ceil((i + 1) H / G) - 1``: exactly ``region_size`` rows when ``H`` is a
    multiple of it (64 px, region 32: rows 0-31 and 32-63); otherwise about
    ``H / G < region_size`` rows each (100 px, region 32: G = 4 cells of 25 rows),
    and when ``H / G`` is not an integer, neighbouring cells share one row (70 px,
    region 32: rows 0-23, 23-46, 46-69). Columns likewise.
    """
    return math.ceil(label_size[0] / region_size[0]), math.ceil(label_size[1] / region_size[1])


@torch.no_grad()
def region_seg_losses(logits: torch.Tensor, gt: torch.Tensor, region_size: Tuple[int, int],
                      ignore_index: int = 255, align_corners: bool = False):
    """Mean cross-entropy against ``gt`` inside each region of the label map.

    Returns ``(loss, valid)``: (N, gh, gw) mean CE over the region's labelled pixels
    and a bool mask of the regions that have at least one labelled pixel. Regions
    are the cells of a ``gh x gw`` grid (``region_grid``), pooled with adaptive
    average pooling: exact ``region_size`` tiles when the label size is a multiple
    of it, otherwise cells of about ``H / gh`` x ``W / gw`` pixels that may share a
    border row/column (see :func:`region_grid`).
    """
    gt = _labels(gt)
    logits = logits_at_labels(logits.detach().float(), gt, align_corners)
    valid = (gt != ignore_index).float()
    ce = F.cross_entropy(logits, gt.clamp(min=0) * (gt != ignore_index), reduction='none') * valid
    grid = region_grid(gt.shape[-2:], region_size)
    ce_sum = F.adaptive_avg_pool2d(ce[:, None], grid)[:, 0]
    count = F.adaptive_avg_pool2d(valid[:, None], grid)[:, 0]
    has = count > 0
    return torch.where(has, ce_sum / count.clamp(min=1e-12), torch.zeros_like(ce_sum)), has


@torch.no_grad()
def region_directions(learner_logits: torch.Tensor, teacher_logits: torch.Tensor, gt: torch.Tensor,
                      region_size: Tuple[int, int], ignore_index: int = 255,
                      align_corners: bool = False) -> torch.Tensor:
    """(N, gh, gw) bool: regions where the teacher of the term is more reliable.

    True where the teacher's mean segmentation loss in the region is strictly lower
    than the learner's (regions without labelled pixels and ties transfer nothing).
    """
    loss_l, valid = region_seg_losses(learner_logits, gt, region_size, ignore_index, align_corners)
    loss_t, _ = region_seg_losses(teacher_logits, gt, region_size, ignore_index, align_corners)
    return valid & (loss_t < loss_l)


@MODELS.register_module()
class RegionBSDLoss(nn.Module):
    r"""Region-wise BSD: in each region, features flow from the more reliable student.

    The label map is split into a ``G_h x G_w`` grid of regions with
    :math:`G = \lceil \text{label size} / \text{region\_size} \rceil` per side;
    feature maps are split into the same grid. Both splits are
    ``F.adaptive_avg_pool2d`` cells: when the label size is a multiple of
    ``region_size`` the regions are exactly ``region_size`` pixels; otherwise each
    is about ``H / G_h`` x ``W / G_w`` pixels (smaller than ``region_size``, e.g.
    four 25-pixel cells for 100 pixels and ``region_size=32``), and neighbouring
    cells share one row/column where ``H / G_h`` or ``W / G_w`` is not an integer
    (see :func:`region_grid`). For region :math:`r` of
    sample :math:`n`, :math:`\ell^s_{nr}` is student s's mean cross-entropy against
    the ground truth over the region's labelled pixels. The learner :math:`a` mimics
    the teacher :math:`b` only in the regions where :math:`b` is more reliable:

    .. math::
        m_{nr} = [\ell^b_{nr} < \ell^a_{nr}],\qquad
        L^{a \leftarrow b} = \frac{w}{N G_h G_w} \sum_{n,r} m_{nr}\,
            \frac{1}{C |r|} \sum_{c,(h,w) \in r} \big(g_a(F_a) - \mathrm{sg}(F_b)\big)^2_{nchw}

    so every region is transferred in at most one direction. The normaliser is the
    number of all regions (not the selected ones), which keeps the loss scale stable
    when few regions are selected. When the two feature maps differ in size the
    target is resized (bilinear) to the learner's map.

    Args:
        region_size (int | tuple): region height/width in label pixels (exact when
            it divides the label size, else an upper bound: see above).
        loss_weight (float): :math:`w` (>= 0).
        ignore_index (int): label value without ground truth.
        align_corners (bool): of the bilinear resizes (mmseg heads use False).
        allow_negative_weight (bool): accept ``loss_weight < 0``.
        selection (str): which regions transfer, for ablations of the reliability
            rule. ``'reliable'`` (default, the paper's): :math:`m_{nr}` above.
            ``'all'``: every region with a labelled pixel, in both directions (plain
            feature mimicry between the students, no reliability rule).
    """

    SELECTIONS = ('reliable', 'all')

    def __init__(self, region_size: Union[int, Sequence[int]] = 32, loss_weight: float = 1.0,
                 ignore_index: int = 255, align_corners: bool = False,
                 allow_negative_weight: bool = False, selection: str = 'reliable') -> None:
        super().__init__()
        check_loss_args(self, loss_weight=loss_weight, ignore_index=ignore_index,
                        integers=('ignore_index', ), allow_negative_weight=allow_negative_weight)
        if selection not in self.SELECTIONS:
            raise ValueError(f'RegionBSDLoss.selection={selection!r} is not valid; choose one '
                             f'of {self.SELECTIONS}')
        self.selection = selection
        self.region_size = _pair(region_size, 'RegionBSDLoss.region_size')
        self.loss_weight = loss_weight
        self.ignore_index = ignore_index
        self.align_corners = align_corners

    def forward(self, pred: torch.Tensor, target: torch.Tensor, learner_logits: torch.Tensor,
                teacher_logits: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        """Args:
            pred: (N, C, h, w) learner features mapped into the teacher's space.
            target: (N, C, h', w') teacher features (detached here).
            learner_logits, teacher_logits: (N, K, h, w) segmentation logits.
            gt: (N, H, W) or (N, 1, H, W) labels.
        """
        if pred.dim() != 4 or target.dim() != 4 or pred.shape[:2] != target.shape[:2]:
            raise ValueError(f'RegionBSDLoss: learner feature {tuple(pred.shape)} and target feature '
                             f'{tuple(target.shape)} must be NCHW maps with equal N and C; set the '
                             'learner connector to map into the other student\'s channels')
        target = target.detach()
        if target.shape[-2:] != pred.shape[-2:]:
            target = F.interpolate(target, size=pred.shape[-2:], mode='bilinear',
                                   align_corners=self.align_corners)
        if self.selection == 'all':
            _, select = region_seg_losses(learner_logits, gt, self.region_size,
                                          self.ignore_index, self.align_corners)
        else:
            select = region_directions(learner_logits, teacher_logits, gt, self.region_size,
                                       self.ignore_index, self.align_corners)
        err = (pred - target).pow(2).mean(dim=1, keepdim=True)
        region_err = F.adaptive_avg_pool2d(err, select.shape[-2:])[:, 0]
        return self.loss_weight * (region_err * select).sum() / select.numel()


@torch.no_grad()
def pixel_selection(learner_logits: torch.Tensor, teacher_logits: torch.Tensor, gt: torch.Tensor,
                    ignore_index: int = 255, align_corners: bool = False,
                    rule: str = 'reliable') -> torch.Tensor:
    r"""(N, H, W) bool: labelled pixels where the teacher of the term is reliable.

    The teacher's prediction is correct there, and either the learner's is wrong or
    the teacher gives the true class a higher probability than the learner does.
    So each pixel is transferred in at most one direction, and not at all where
    both students are wrong.

    The confidences are compared without rounding them to 1: by :math:`\log p_y`, and
    where those are equal in float32, by the log of the other classes' mass
    :math:`\log(1 - p_y) = \mathrm{logsumexp}_{k\ne y} z_k - \mathrm{logsumexp}_k z_k`
    (smaller is more confident). Two confident students (true-class margins above
    ~17) both have :math:`p_y = 1.0` and :math:`\log p_y = 0` in float32, yet
    different non-target masses.

    ``rule`` selects the ablations of :class:`PixelBSDLoss`: ``'reliable'`` (the
    above), ``'teacher_correct'`` (every labelled pixel the teacher predicts
    correctly, whatever the learner does: both directions where both are right) and
    ``'all'`` (every labelled pixel).
    """
    gt = _labels(gt)
    valid = gt != ignore_index
    if rule == 'all':
        return valid
    z_t = logits_at_labels(teacher_logits.detach().float(), gt, align_corners)
    right_t = z_t.argmax(1) == gt
    if rule == 'teacher_correct':
        return valid & right_t
    z_l = logits_at_labels(learner_logits.detach().float(), gt, align_corners)
    idx = (gt.clamp(min=0) * valid)[:, None]
    log_p_l, log_not_l = _true_class_log_masses(z_l, idx)
    log_p_t, log_not_t = _true_class_log_masses(z_t, idx)
    more_confident = (log_p_t > log_p_l) | ((log_p_t == log_p_l) & (log_not_t < log_not_l))
    right_l = z_l.argmax(1) == gt
    return valid & right_t & (~right_l | more_confident)


def _true_class_log_masses(logits: torch.Tensor, idx: torch.Tensor):
    """``(log p_y, log(1 - p_y))`` per pixel, both from logsumexps (no ``1 - p``)."""
    lse = torch.logsumexp(logits, dim=1)
    log_p = logits.gather(1, idx)[:, 0] - lse
    others = logits.scatter(1, idx, float('-inf'))
    return log_p, torch.logsumexp(others, dim=1) - lse


@MODELS.register_module()
class PixelBSDLoss(nn.Module):
    r"""Pixel-wise BSD: logit KD only at the pixels where the teacher is reliable.

    With :math:`p = \mathrm{softmax}(z/\tau)` at every labelled pixel :math:`i`
    (logits resized to the label map) and the selection :math:`m_i` of
    :func:`pixel_selection` (teacher correct, and learner wrong or less confident
    in the true class):

    .. math::
        L^{a \leftarrow b} = \frac{w\,\tau^2}{|\Omega|} \sum_{i \in \Omega} m_i
            \sum_k p^b_{ik} \log\frac{p^b_{ik}}{p^a_{ik}}

    where :math:`\Omega` are the labelled pixels (the normaliser counts all of them,
    not only the selected ones).

    Args:
        tau (float): temperature :math:`\tau`.
        loss_weight (float): :math:`w` (>= 0).
        ignore_index (int): label value without ground truth.
        align_corners (bool): of the bilinear resize of the logits.
        allow_negative_weight (bool): accept ``loss_weight < 0``.
        selection (str): which pixels transfer, for ablations of the reliability
            rule: ``'reliable'`` (default, the paper's :math:`m_i`),
            ``'teacher_correct'`` (the teacher is right; the learner's correctness and
            confidence are not compared) or ``'all'`` (every labelled pixel: plain
            pixel-wise KD in both directions).
    """

    SELECTIONS = ('reliable', 'teacher_correct', 'all')

    def __init__(self, tau: float = 1.0, loss_weight: float = 1.0, ignore_index: int = 255,
                 align_corners: bool = False, allow_negative_weight: bool = False,
                 selection: str = 'reliable') -> None:
        super().__init__()
        check_loss_args(self, tau=tau, loss_weight=loss_weight, ignore_index=ignore_index,
                        integers=('ignore_index', ), allow_negative_weight=allow_negative_weight)
        if selection not in self.SELECTIONS:
            raise ValueError(f'PixelBSDLoss.selection={selection!r} is not valid; choose one '
                             f'of {self.SELECTIONS}')
        self.selection = selection
        self.tau = tau
        self.loss_weight = loss_weight
        self.ignore_index = ignore_index
        self.align_corners = align_corners

    def forward(self, learner_logits: torch.Tensor, teacher_logits: torch.Tensor,
                gt: torch.Tensor) -> torch.Tensor:
        """Args: learner_logits, teacher_logits: (N, K, h, w); gt: (N, [1,] H, W)."""
        if learner_logits.shape[:2] != teacher_logits.shape[:2]:
            raise ValueError(f'PixelBSDLoss: logits {tuple(learner_logits.shape)} and '
                             f'{tuple(teacher_logits.shape)} differ in batch or class count')
        gt = _labels(gt)
        select = pixel_selection(learner_logits, teacher_logits, gt, self.ignore_index,
                                 self.align_corners, rule=self.selection)
        z_l = logits_at_labels(learner_logits, gt, self.align_corners)
        z_t = logits_at_labels(teacher_logits.detach(), gt, self.align_corners)
        log_p_l = F.log_softmax(z_l / self.tau, dim=1)
        log_p_t = F.log_softmax(z_t / self.tau, dim=1)
        kl = (log_p_t.exp() * (log_p_t - log_p_l)).sum(1)
        num_valid = (gt != self.ignore_index).sum().clamp(min=1)
        return self.loss_weight * self.tau**2 * (kl * select).sum() / num_valid
