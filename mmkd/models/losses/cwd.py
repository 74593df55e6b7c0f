"""Channel-wise distillation for dense prediction (Shu et al., ICCV 2021)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmkd.registry import MODELS

from .utils import check_loss_args


@MODELS.register_module()
class ChannelWiseDivergence(nn.Module):
    r"""CWD: each channel's activation map becomes a distribution over positions.

    "Channel-wise Knowledge Distillation for Dense Prediction", Shu et al., ICCV 2021
    (Eq. 2-3). For channel c of sample n with H*W positions i:

    .. math::
        \phi(y_{nc})_i = \frac{\exp(y_{nc,i}/\tau)}{\sum_j \exp(y_{nc,j}/\tau)}\\
        L = w\,\frac{\tau^2}{N C} \sum_{n,c} \sum_i \phi(y^T_{nc})_i
            \log\frac{\phi(y^T_{nc})_i}{\phi(y^S_{nc})_i}

    Used on segmentation logits (tau=4 in the paper's Cityscapes setting) or on
    feature maps after a connector. The teacher map is detached.

    Args:
        tau (float): temperature.
        loss_weight (float): :math:`w` (the paper uses 3 for logits; >= 0).
        allow_negative_weight (bool): accept ``loss_weight < 0``.
    """

    paired_inputs = (('preds_S', 'preds_T'), )

    def __init__(self, tau: float = 1.0, loss_weight: float = 1.0,
                 allow_negative_weight: bool = False) -> None:
        super().__init__()
        check_loss_args(self, tau=tau, loss_weight=loss_weight,
                        allow_negative_weight=allow_negative_weight)
        self.tau = tau
        self.loss_weight = loss_weight

    def forward(self, preds_S: torch.Tensor, preds_T: torch.Tensor) -> torch.Tensor:
        """Args: preds_S, preds_T: (N, C, H, W) maps of the same shape."""
        if preds_S.dim() != 4:
            raise ValueError(f'ChannelWiseDivergence expects NCHW maps, got {tuple(preds_S.shape)}')
        n, c = preds_S.shape[:2]
        s = preds_S.flatten(2) / self.tau
        t = preds_T.detach().flatten(2) / self.tau
        log_p_t = F.log_softmax(t, dim=2)
        log_p_s = F.log_softmax(s, dim=2)
        kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum()
        return self.loss_weight * self.tau**2 * kl / (n * c)
