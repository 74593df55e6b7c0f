"""Heterogeneous feature distillation (HFD) of CNN-ViT collaborative learning."""
from __future__ import annotations

import torch
from torch import nn

from mmkd.registry import MODELS

from .utils import check_loss_args


@MODELS.register_module()
class HFDLoss(nn.Module):
    r"""HFD: one student mimics the other's low-layer features (one direction).

    Zhu, Luo, Zheng, Wang, Wang. *A Good Student is Cooperative and Reliable:
    CNN-Transformer Collaborative Learning for Semantic Segmentation*. ICCV 2023,
    arXiv:2307.12574. HFD makes the two students consistent in the low-layer
    feature space by letting each mimic the other's (heterogeneous) features.

    ``pred`` is the learner's low-layer feature already mapped by its connector into
    the other student's feature space; ``target`` is the other student's feature,
    detached here (the other student is the teacher of this term and must receive
    no gradient from it):

    .. math::
        L_{HFD}^{a \leftarrow b} = w \cdot \frac{1}{N C H W}
            \sum_{n,c,h,w} \big(g_a(F_a)_{nchw} - \mathrm{sg}(F_b)_{nchw}\big)^2

    :class:`~mmkd.models.algorithms.CollaborativeDistill` calls it once per
    direction (CNN learns from ViT and ViT learns from CNN).

    Args:
        loss_weight (float): :math:`w` (>= 0).
        allow_negative_weight (bool): accept ``loss_weight < 0``.
    """

    def __init__(self, loss_weight: float = 1.0, allow_negative_weight: bool = False) -> None:
        super().__init__()
        check_loss_args(self, loss_weight=loss_weight, allow_negative_weight=allow_negative_weight)
        self.loss_weight = loss_weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Args: pred, target: tensors of the same shape (usually NCHW maps)."""
        if pred.shape != target.shape:
            raise ValueError(
                f'HFDLoss: learner feature {tuple(pred.shape)} and target feature '
                f'{tuple(target.shape)} differ; set the learner connector (channels, '
                'out_size) so that it maps into the other student\'s feature space')
        return self.loss_weight * (pred - target.detach()).pow(2).mean()
