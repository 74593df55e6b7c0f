"""Temperature-scaled KL divergence, averaged over samples (MST-Distill's KD terms)."""
from __future__ import annotations

import torch
from torch import nn

from mmkd.registry import MODELS

from .mst_losses import kl_per_sample
from .utils import check_loss_args


@MODELS.register_module()
class PerSampleKLDivergence(nn.Module):
    r"""KD term of MST-Distill's co-training and MaskNet stages (and of mutual learning).

    MST-Distill (Li et al., ACM MM 2025, arXiv:2507.07015; official
    ``main-MST-Distill.py``), with :math:`p = \mathrm{softmax}(z/\tau)` over the class
    dimension 1 of (N, C) or (N, C, H, W) logits:

    .. math::
        \mathrm{KL}_n = \frac{1}{|P|}\sum_{x\in P}\sum_c p^T_{ncx}
            (\log p^T_{ncx} - \log p^S_{ncx}),\qquad
        L = w\,\tau^2\,\frac{1}{N}\sum_n \mathrm{KL}_n

    where :math:`P` are the pixels of a dense sample (one position for (N, C)). For
    (N, C) logits this is :class:`KLDivergence` with ``reduction='batchmean'``; for
    dense logits it is ``'pixelmean'``. It differs from :class:`KLDivergence` in two
    ways: it sums per sample first (the official code's order, so the numbers are
    the same bit for bit), and ``detach_target=False`` lets the gradient reach the
    target too, as in deep mutual learning, where every model is both (MST-Distill's
    stage 1 with co-trained teachers).

    Args:
        tau (float): temperature :math:`\tau` (> 0; official 4).
        detach_target (bool): detach ``preds_T`` (default True: a target).
        loss_weight (float): :math:`w` (>= 0).
        allow_negative_weight (bool): accept ``loss_weight < 0``.
    """

    paired_inputs = (('preds_S', 'preds_T'), )

    def __init__(self, tau: float = 4.0, detach_target: bool = True, loss_weight: float = 1.0,
                 allow_negative_weight: bool = False) -> None:
        super().__init__()
        check_loss_args(self, tau=tau, loss_weight=loss_weight,
                        allow_negative_weight=allow_negative_weight)
        if not isinstance(detach_target, bool):
            raise TypeError(f'PerSampleKLDivergence: detach_target must be a bool, got '
                            f'{detach_target!r}')
        self.tau = tau
        self.detach_target = detach_target
        self.loss_weight = loss_weight

    def forward(self, preds_S: torch.Tensor, preds_T: torch.Tensor) -> torch.Tensor:
        """Args: preds_S (N, C[, H, W]) logits being fitted; preds_T the target's logits,
        same shape."""
        if preds_S.dim() < 2:
            raise ValueError('PerSampleKLDivergence: logits need a class dimension (dim 1), '
                             f'got shape {tuple(preds_S.shape)}')
        target = preds_T.detach() if self.detach_target else preds_T
        return self.loss_weight * self.tau**2 * kl_per_sample(target, preds_S, self.tau).mean()
