"""G2SD's generic distillation: smooth-L1 regression of layer-normalised teacher states."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmkd.registry import MODELS

from .utils import check_loss_args


@MODELS.register_module()
class LayerNormSmoothL1Loss(nn.Module):
    r"""Smooth-L1 between a student prediction and the layer-normalised teacher feature.

    "Generic-to-Specific Distillation of Masked Autoencoders", Huang et al., CVPR 2023
    (arXiv:2302.14771, github pengzhiliang/G2SD). In generic distillation the
    student's decoder output, mapped by a predictor MLP (a connector), regresses
    the hidden states of an intermediate teacher decoder block (block 4 of the MAE
    ViT-B decoder's 8) for all tokens, visible and masked. The target is normalised
    per token without affine parameters:

    .. math::
        \hat t_{bn} = \frac{t_{bn} - \mu_{bn}}{\sqrt{\sigma^2_{bn} + \epsilon}}
        \quad(\mu, \sigma^2\text{: mean and biased variance over channels})\\
        \ell(d) = \begin{cases} 0.5\,d^2/\beta & |d| < \beta\\
                                |d| - 0.5\,\beta & \text{otherwise}\end{cases}\\
        L = w \cdot \frac{1}{BNC}\sum_{b,n,c} \ell(s_{bnc} - \hat t_{bnc})

    The teacher feature is detached.

    Args:
        beta (float): smooth-L1 threshold :math:`\beta` (G2SD: 2.0).
        eps (float): :math:`\epsilon` of the layer norm (G2SD: 1e-6).
        loss_weight (float): :math:`w` (G2SD: 1.0; >= 0).
        allow_negative_weight (bool): accept ``loss_weight < 0``.
    """

    paired_inputs = (('s_feature', 't_feature'), )

    def __init__(self, beta: float = 2.0, eps: float = 1e-6, loss_weight: float = 1.0,
                 allow_negative_weight: bool = False) -> None:
        super().__init__()
        check_loss_args(self, beta=beta, eps=eps, loss_weight=loss_weight, positive=('beta', ),
                        non_negative=('eps', ),
                        allow_negative_weight=allow_negative_weight)
        self.beta = beta
        self.eps = eps
        self.loss_weight = loss_weight

    def forward(self, s_feature: torch.Tensor, t_feature: torch.Tensor) -> torch.Tensor:
        """Args: s_feature (B, N, C) student prediction; t_feature (B, N, C) teacher states."""
        t = t_feature.detach()
        target = F.layer_norm(t, t.shape[-1:], eps=self.eps)
        return self.loss_weight * F.smooth_l1_loss(s_feature, target, beta=self.beta)
