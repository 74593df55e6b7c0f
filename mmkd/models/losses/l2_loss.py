"""FitNet-style feature mimicking (Romero et al., ICLR 2015)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmkd.registry import MODELS

from .utils import check_loss_args


@MODELS.register_module()
class L2Loss(nn.Module):
    r"""Squared error between (connector-mapped) student and teacher features.

    "FitNets: Hints for Thin Deep Nets", Romero et al., ICLR 2015: the student's
    guided layer, passed through a regressor (a connector here), mimics the
    teacher's hint layer with an L2 loss.

    .. math::
        \hat f = f / \lVert f \rVert_2 \text{ per sample (if normalize)}\\
        L = w \cdot \mathrm{reduce}\big((\hat f^S - \hat f^T)^2\big)

    where reduce is the mean over all elements ('mean'), the sum divided by the
    batch size N ('batchmean') or the sum ('sum'). The teacher feature is detached.

    Args:
        normalize (bool): L2-normalise each sample's flattened feature first.
        reduction (str): 'mean', 'batchmean' or 'sum'.
        loss_weight (float): :math:`w` (>= 0).
        allow_negative_weight (bool): accept ``loss_weight < 0``.
    """

    paired_inputs = (('s_feature', 't_feature'), )

    def __init__(self, normalize: bool = False, reduction: str = 'mean', loss_weight: float = 1.0,
                 allow_negative_weight: bool = False) -> None:
        super().__init__()
        check_loss_args(self, loss_weight=loss_weight, allow_negative_weight=allow_negative_weight)
        if reduction not in ('mean', 'batchmean', 'sum'):
            raise ValueError(f"reduction={reduction!r}; valid: 'mean', 'batchmean', 'sum'")
        self.normalize = normalize
        self.reduction = reduction
        self.loss_weight = loss_weight

    def forward(self, s_feature: torch.Tensor, t_feature: torch.Tensor) -> torch.Tensor:
        """Args: s_feature, t_feature: tensors of the same shape (N, ...)."""
        t_feature = t_feature.detach()
        if self.normalize:
            s_feature = F.normalize(s_feature.flatten(1), dim=1)
            t_feature = F.normalize(t_feature.flatten(1), dim=1)
        sq = (s_feature - t_feature).pow(2)
        if self.reduction == 'mean':
            loss = sq.mean()
        elif self.reduction == 'sum':
            loss = sq.sum()
        else:
            loss = sq.sum() / s_feature.shape[0]
        return self.loss_weight * loss
