"""DMAE's feature alignment: L1 between L2-normalised token features."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmkd.registry import MODELS

from .utils import check_loss_args


@MODELS.register_module()
class NormalizedL1Loss(nn.Module):
    r"""L1 distance between per-token L2-normalised student and teacher features.

    "Masked Autoencoders Enable Efficient Knowledge Distillers", Bai et al., CVPR 2023
    (arXiv:2208.12256, github UCSC-VLAA/DMAE). The output of an intermediate student
    block (e.g. block 9 of ViT-B), projected to the teacher width by a connector,
    is aligned with the output of an intermediate teacher block (e.g. block 18 of
    ViT-L) on the visible tokens (class token included):

    .. math::
        \bar f_{bn} = f_{bn} / \max(\lVert f_{bn} \rVert_2, \epsilon)
        \quad\text{(over the channel dimension of each token)}\\
        L = w \cdot \frac{1}{BNC}\sum_{b,n,c} \big|\bar f^S_{bnc} - \bar f^T_{bnc}\big|

    The teacher feature is detached.

    Args:
        eps (float): :math:`\epsilon`, guards the division (default 1e-12).
        loss_weight (float): :math:`w` (DMAE: 1.0, added to the pixel loss; >= 0).
        allow_negative_weight (bool): accept ``loss_weight < 0``.
    """

    paired_inputs = (('s_feature', 't_feature'), )

    def __init__(self, eps: float = 1e-12, loss_weight: float = 1.0,
                 allow_negative_weight: bool = False) -> None:
        super().__init__()
        check_loss_args(self, eps=eps, loss_weight=loss_weight, positive=('eps', ),
                        allow_negative_weight=allow_negative_weight)
        self.eps = eps
        self.loss_weight = loss_weight

    def forward(self, s_feature: torch.Tensor, t_feature: torch.Tensor) -> torch.Tensor:
        """Args: s_feature, t_feature: (B, N, C) token features of equal shape."""
        s_unit = F.normalize(s_feature, dim=-1, eps=self.eps)
        t_unit = F.normalize(t_feature.detach(), dim=-1, eps=self.eps)
        return self.loss_weight * (s_unit - t_unit).abs().mean()
