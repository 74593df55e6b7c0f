"""Decoupled knowledge distillation (Zhao et al., CVPR 2022)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmkd.registry import MODELS

from .utils import check_loss_args


@MODELS.register_module()
class DKDLoss(nn.Module):
    r"""DKD: KD split into target-class (TCKD) and non-target-class (NCKD) terms.

    "Decoupled Knowledge Distillation", Zhao et al., CVPR 2022 (Eq. 7). With
    :math:`p = \mathrm{softmax}(z/\tau)` and target class :math:`t`:

    .. math::
        b = [p_t,\ 1 - p_t],\qquad
        \hat p_i = \frac{\exp(z_i/\tau)}{\sum_{j\ne t}\exp(z_j/\tau)}\ (i\ne t)\\
        \mathrm{TCKD} = \mathrm{KL}(b^T\Vert b^S),\qquad
        \mathrm{NCKD} = \mathrm{KL}(\hat p^T\Vert \hat p^S)\\
        L = w\,\tau^2\,(\alpha\,\mathrm{TCKD} + \beta\,\mathrm{NCKD})

    averaged over the samples that carry a label. Paper defaults: alpha=1, beta=8
    (CIFAR-100; beta depends on the teacher on ImageNet), tau=4 (CIFAR-100) or 1
    (ImageNet); the authors warm the loss up linearly over the first 20 epochs
    (use ``DistillLossWeightHook``). Samples whose label is negative (unlabelled,
    e.g. -100 in the few-label setting) are skipped.

    Everything runs in log space: :math:`\log(1 - p_t)` is
    :math:`\mathrm{logsumexp}_{j\ne t}(z_j/\tau) - \mathrm{logsumexp}_j(z_j/\tau)`,
    never ``log(1 - exp(log p_t))``, which rounds :math:`1 - p_t` to a clamp once the
    non-target mass falls below the float resolution (target margin ~16 at tau=1 in
    float32): the TCKD value then saturates and the gradient on the target logit
    vanishes for confident students. The gradient of TCKD on the student's target
    logit is :math:`w\,\tau\,\alpha\,(p^S_t - p^T_t)` per sample (before the mean).

    Args:
        tau (float): temperature.
        alpha (float): TCKD weight.
        beta (float): NCKD weight.
        loss_weight (float): :math:`w` (>= 0).
        allow_negative_weight (bool): accept ``loss_weight < 0``.
    """

    paired_inputs = (('preds_S', 'preds_T'), )

    def __init__(self, tau: float = 1.0, alpha: float = 1.0, beta: float = 8.0,
                 loss_weight: float = 1.0, allow_negative_weight: bool = False) -> None:
        super().__init__()
        check_loss_args(self, tau=tau, alpha=alpha, beta=beta, loss_weight=loss_weight,
                        allow_negative_weight=allow_negative_weight)
        self.tau, self.alpha, self.beta, self.loss_weight = tau, alpha, beta, loss_weight

    @staticmethod
    def _kl(log_p_t: torch.Tensor, log_p_s: torch.Tensor) -> torch.Tensor:
        return (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1)

    def forward(self, preds_S: torch.Tensor, preds_T: torch.Tensor, gt_labels: torch.Tensor) -> torch.Tensor:
        """Args: preds_S, preds_T (N, C) logits; gt_labels (N,) class indices."""
        if preds_S.dim() != 2 or preds_S.shape[1] < 2:
            raise ValueError(f'DKDLoss: preds_S must be (N, C) logits with C >= 2 (a target and at '
                             f'least one non-target class), got shape {tuple(preds_S.shape)}')
        gt_labels = gt_labels.reshape(-1).long()
        keep = gt_labels >= 0
        if not bool(keep.any()):
            return preds_S.sum() * 0.0
        s = preds_S[keep] / self.tau
        t = preds_T.detach()[keep] / self.tau
        target = F.one_hot(gt_labels[keep], s.shape[1]).bool()
        masked_s = s.masked_fill(target, float('-inf'))
        masked_t = t.masked_fill(target, float('-inf'))

        # Binary target / non-target distributions, both entries in log space:
        # log p_t = z_t - lse(z), log(1 - p_t) = lse(z_{j != t}) - lse(z).
        def binary(z, masked_z):
            lse = torch.logsumexp(z, dim=1)
            log_pt = z[target] - lse
            log_not = torch.logsumexp(masked_z, dim=1) - lse
            return torch.stack([log_pt, log_not], dim=1)
        tckd = self._kl(binary(t, masked_t), binary(s, masked_s))
        # Non-target distribution: softmax over the other classes (target masked out).
        log_q_s = F.log_softmax(masked_s, dim=1).masked_fill(target, 0.0)
        log_q_t = F.log_softmax(masked_t, dim=1).masked_fill(target, 0.0)
        nckd = self._kl(log_q_t, log_q_s)
        per_sample = self.alpha * tckd + self.beta * nckd
        return self.loss_weight * self.tau**2 * per_sample.mean()
