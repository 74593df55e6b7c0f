"""DeiT's hard-label distillation, used by G2SD's specific (task) stage."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmkd.registry import MODELS

from .utils import check_loss_args, logits_to_rows


@MODELS.register_module()
class HardDistillationLoss(nn.Module):
    r"""Cross-entropy of the student against the teacher's arg-max label.

    "Training data-efficient image transformers & distillation through attention",
    Touvron et al., ICML 2021 (hard-label distillation of the distillation token),
    as used in the specific stage of G2SD (Huang et al., CVPR 2023), where the
    total loss is the mean of the ground-truth loss on the class token and this
    loss on the distillation token (so ``loss_weight=0.5`` next to a student head
    whose loss weight is 0.5):

    .. math::
        y^T_r = \arg\max_c z^T_{rc},\qquad
        L = w \cdot \frac{1}{R}\sum_r -\log \mathrm{softmax}(z^S_r)_{y^T_r}

    Rows are samples for (N, C) logits and pixels for (N, C, H, W) logits. The
    teacher logits only provide labels (no gradient). For the soft variant use
    :class:`KLDivergence` on the same inputs.

    Args:
        loss_weight (float): :math:`w` (>= 0).
        allow_negative_weight (bool): accept ``loss_weight < 0``.
    """

    paired_inputs = (('preds_S', 'preds_T'), )

    def __init__(self, loss_weight: float = 1.0, allow_negative_weight: bool = False) -> None:
        super().__init__()
        check_loss_args(self, loss_weight=loss_weight, allow_negative_weight=allow_negative_weight)
        self.loss_weight = loss_weight

    def forward(self, preds_S: torch.Tensor, preds_T: torch.Tensor) -> torch.Tensor:
        """Args: preds_S student logits (N, C[, H, W]); preds_T teacher logits, same shape."""
        s = logits_to_rows(preds_S)
        labels = logits_to_rows(preds_T.detach()).argmax(dim=1)
        return self.loss_weight * F.cross_entropy(s, labels)
