"""Feature-richness-score (FRS) distillation for detectors, as G2SD's detection stage uses it.

Du et al., "Distilling Object Detectors with Feature Richness", NeurIPS 2021; G2SD
(Huang et al., CVPR 2023) distils its ViTDet Mask R-CNN students with it: the
teacher's RPN objectness, turned into probabilities and maxed over the anchors of a
location, weights both a feature-imitation term on every pyramid level and a
binary cross-entropy between student and teacher objectness.

Both losses read one level: call them once per level (one mapping each).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmkd.registry import MODELS

from .utils import check_loss_args


def feature_richness_mask(t_logits: torch.Tensor) -> torch.Tensor:
    """Richness of each location: ``m[n, h, w] = max_a sigmoid(t_logits[n, a, h, w])``.

    Args:
        t_logits: the teacher's sigmoid classification logits of one level, (N, A, H, W)
            (A anchors, or anchors x classes for a one-stage head). Detached here.
    """
    if t_logits.dim() != 4:
        raise ValueError(f'the teacher logits must be (N, A, H, W), got {tuple(t_logits.shape)}')
    return t_logits.detach().float().sigmoid().amax(dim=1)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``sum_{n,c,h,w} mask[n,h,w] * values[n,c,h,w] / sum_{n,h,w} mask[n,h,w]``."""
    # sigmoid > 0, so the sum is positive; the clamp only guards an underflow to 0
    return (values * mask[:, None]).sum() / mask.sum().clamp_min(1e-12)


@MODELS.register_module()
class FRSFeatureLoss(nn.Module):
    r"""FRS feature imitation on one pyramid level.

    .. math::
        m_{nhw} = \max_a \sigma(z^T_{nahw}), \qquad
        L = w \, \frac{\sum_{n,c,h,w} m_{nhw} (F^T_{nchw} - F^S_{nchw})^2}{\sum_{n,h,w} m_{nhw}}

    :math:`F^S` is the student's feature after its adapter (G2SD: a 3x3 conv per level,
    ``ConvConnector(kernel_size=3)``), :math:`F^T` the teacher's, :math:`z^T` the
    teacher's RPN objectness logits on the same level. G2SD: :math:`w = 0.001`
    (``distill_feat_weight``), summed over the 5 levels P2-P6.

    Args:
        loss_weight (float): :math:`w` (>= 0).
        allow_negative_weight (bool): accept ``loss_weight < 0``.
    """

    paired_inputs = (('s_feature', 't_feature'), )

    def __init__(self, loss_weight: float = 1.0, allow_negative_weight: bool = False) -> None:
        super().__init__()
        check_loss_args(self, loss_weight=loss_weight, allow_negative_weight=allow_negative_weight)
        self.loss_weight = loss_weight

    def forward(self, s_feature: torch.Tensor, t_feature: torch.Tensor,
                t_logits: torch.Tensor) -> torch.Tensor:
        """Args: s_feature, t_feature: (N, C, H, W); t_logits: (N, A, H, W)."""
        mask = feature_richness_mask(t_logits)
        if s_feature.dim() != 4 or mask.shape != (s_feature.shape[0], *s_feature.shape[2:]):
            raise ValueError(f'FRSFeatureLoss: feature {tuple(s_feature.shape)} and teacher '
                             f'logits {tuple(t_logits.shape)} must be maps of the same level '
                             '(same N, H, W)')
        sq = (t_feature.detach().float() - s_feature.float()).pow(2)
        return self.loss_weight * _masked_mean(sq, mask)


@MODELS.register_module()
class FRSClsLoss(nn.Module):
    r"""FRS prediction distillation: BCE between student and teacher objectness, one level.

    .. math::
        p^T = \sigma(z^T),\; p^S = \sigma(z^S), \qquad
        L = w \, \frac{\sum_{n,a,h,w} m_{nhw}\,
            \mathrm{BCE}(p^S_{nahw}, p^T_{nahw})}{\sum_{n,h,w} m_{nhw}},

    :math:`\mathrm{BCE}(p, q) = -q \log p - (1 - q) \log(1 - p)`, with the mask
    :math:`m` of :class:`FRSFeatureLoss`. Computed from the logits (numerically stable).
    G2SD: :math:`w = 0.1` (``distill_cls_weight``) on the RPN objectness of P2-P6.

    Args:
        loss_weight (float): :math:`w` (>= 0).
        allow_negative_weight (bool): accept ``loss_weight < 0``.
    """

    paired_inputs = (('s_logits', 't_logits'), )

    def __init__(self, loss_weight: float = 1.0, allow_negative_weight: bool = False) -> None:
        super().__init__()
        check_loss_args(self, loss_weight=loss_weight, allow_negative_weight=allow_negative_weight)
        self.loss_weight = loss_weight

    def forward(self, s_logits: torch.Tensor, t_logits: torch.Tensor) -> torch.Tensor:
        """Args: s_logits, t_logits: (N, A, H, W) sigmoid logits of one level."""
        mask = feature_richness_mask(t_logits)
        p_t = t_logits.detach().float().sigmoid()
        bce = F.binary_cross_entropy_with_logits(s_logits.float(), p_t, reduction='none')
        return self.loss_weight * _masked_mean(bce, mask)
