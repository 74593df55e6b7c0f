"""Logit distillation with temperature (Hinton et al., 2015)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmkd.registry import MODELS

from .utils import logits_to_rows, reduce_rows


@MODELS.register_module()
class KLDivergence(nn.Module):
    r"""KL divergence between temperature-softened teacher and student distributions.

    "Distilling the Knowledge in a Neural Network", Hinton, Vinyals, Dean, 2015.

    .. math::
        p^T = \mathrm{softmax}(z^T/\tau),\quad p^S = \mathrm{softmax}(z^S/\tau)\\
        L = w\,\tau^2\,\frac{1}{R}\sum_{r=1}^{R}\sum_c p^T_{rc}
            (\log p^T_{rc} - \log p^S_{rc})

    The :math:`\tau^2` factor keeps gradient magnitudes comparable across
    temperatures (Hinton et al., Sec. 2). Rows are samples for (N, C) logits and
    pixels for (N, C, H, W) logits. The teacher logits are a target: detached.

    Args:
        tau (float): temperature :math:`\tau` (> 0).
        reduction (str): 'batchmean' (mean over rows, the KD default), 'sum', 'none'.
        loss_weight (float): :math:`w`.
    """

    paired_inputs = (('preds_S', 'preds_T'), )

    def __init__(self, tau: float = 1.0, reduction: str = 'batchmean', loss_weight: float = 1.0) -> None:
        super().__init__()
        if tau <= 0:
            raise ValueError(f'tau must be > 0, got {tau}')
        reduce_rows(torch.zeros(1), reduction)  # validate early
        self.tau = tau
        self.reduction = reduction
        self.loss_weight = loss_weight

    def forward(self, preds_S: torch.Tensor, preds_T: torch.Tensor) -> torch.Tensor:
        """Args: preds_S (N, C[, H, W]) student logits; preds_T teacher logits, same shape."""
        s = logits_to_rows(preds_S) / self.tau
        t = logits_to_rows(preds_T.detach()) / self.tau
        log_p_s = F.log_softmax(s, dim=1)
        log_p_t = F.log_softmax(t, dim=1)
        per_row = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1)
        return self.loss_weight * self.tau**2 * reduce_rows(per_row, self.reduction)
