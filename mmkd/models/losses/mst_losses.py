"""Losses of multi-teacher distillation and of MST-Distill's router.

MST-Distill: Li, Yang, Chen, Dong, Chen, Wang. *MST-Distill: Mixture of Specialized
Teachers for Cross-Modal Knowledge Distillation*. ACM MM 2025 (arXiv:2507.07015);
official code github.com/Gray-OREO/MST-Distill (``KD_methods/MST.py``).

All three losses take the teachers' logits stacked along dim 1, ``(N, E, C[, H, W])``
for E teachers (or a list of E tensors ``(N, C[, H, W])``). Teacher logits are
targets: they are detached. For dense logits ``(N, C, H, W)`` the KL divergence of
a sample is the mean over its pixels, which is what the official code computes for
NYU-Depth-V2 (``batchmean`` divided by ``H * W``).
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from mmkd.registry import MODELS

from .utils import check_loss_args

TeacherLogits = Union[torch.Tensor, Sequence[torch.Tensor]]


def stack_teachers(preds_T: TeacherLogits) -> torch.Tensor:
    """Return teacher logits as one ``(N, E, C[, H, W])`` tensor."""
    if isinstance(preds_T, torch.Tensor):
        if preds_T.dim() < 3:
            raise ValueError('preds_T must be (N, E, C[, H, W]) or a list of (N, C[, H, W]) '
                             f'tensors, got shape {tuple(preds_T.shape)}')
        return preds_T
    preds_T = list(preds_T)
    if not preds_T:
        raise ValueError('preds_T is an empty list: at least one teacher is needed')
    shapes = {tuple(t.shape) for t in preds_T}
    if len(shapes) != 1:
        raise ValueError(f'all teachers must give logits of one shape, got {sorted(shapes)}')
    return torch.stack(preds_T, dim=1)


def kl_per_sample(target_logits: torch.Tensor, logits: torch.Tensor, tau: float) -> torch.Tensor:
    r"""Per-sample :math:`\mathrm{KL}(\mathrm{softmax}(t/\tau)\,\|\,\mathrm{softmax}(s/\tau))`.

    Args:
        target_logits: (N, C[, H, W]) logits of the target distribution (not detached
            here: the caller decides).
        logits: (N, C[, H, W]) logits of the distribution being fitted.
        tau: temperature.

    Returns:
        (N,) tensor: KL summed over classes, averaged over pixels for dense logits.
    """
    if target_logits.shape != logits.shape:
        raise ValueError(f'target logits {tuple(target_logits.shape)} and logits '
                         f'{tuple(logits.shape)} must have one shape')
    log_p_t = F.log_softmax(target_logits / tau, dim=1)
    log_p_s = F.log_softmax(logits / tau, dim=1)
    per_position = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1)  # (N[, H, W])
    return per_position.reshape(per_position.shape[0], -1).mean(dim=1)


def topk_route(gate_probs: torch.Tensor, k: int) -> torch.Tensor:
    """Indices ``(N, k)`` of each sample's ``k`` most probable teachers (descending)."""
    if gate_probs.dim() != 2:
        raise ValueError(f'gate_probs must be (N, E), got shape {tuple(gate_probs.shape)}')
    num_ways = gate_probs.shape[1]
    if not 1 <= k <= num_ways:
        raise ValueError(f'topk={k} is not valid for {num_ways} teachers; valid: 1..{num_ways}')
    return torch.topk(gate_probs, k=k, dim=1).indices


@MODELS.register_module()
class RoutedKDLoss(nn.Module):
    r"""MST-Distill's routed distillation: each sample learns from its top-k teachers.

    A router gives each sample n a distribution :math:`g_n` over the E (specialised)
    teachers; :math:`S_n` holds the indices of the k largest :math:`g_{ne}`. Then

    .. math::
        L = w\,\frac{\tau^2}{N\,k}\sum_{n=1}^{N}\sum_{e\in S_n}
            \mathrm{KL}\big(\mathrm{softmax}(z^{T_e}_n/\tau)\,\big\|\,
            \mathrm{softmax}(z^{S}_n/\tau)\big)

    (official ``k_ways_MTGdistillation_detached``; tau=4 there). The selection is
    hard: the gate probabilities choose the targets but do not weight them, so no
    gradient reaches the router through this loss (in the official code the router
    learns from the load-balancing loss only). Each sample's gradient flows only
    through the targets of its selected teachers.

    Args:
        tau (float): temperature (official: 4).
        topk (int): teachers per sample (official default: 1).
        loss_weight (float): :math:`w` (official ``w_kl``, default 1; >= 0).
        allow_negative_weight (bool): accept ``loss_weight < 0``.
    """

    paired_inputs = ()

    def __init__(self, tau: float = 4.0, topk: int = 1, loss_weight: float = 1.0,
                 allow_negative_weight: bool = False) -> None:
        super().__init__()
        check_loss_args(self, tau=tau, topk=topk, loss_weight=loss_weight, integers=('topk', ),
                        positive=('topk', ), allow_negative_weight=allow_negative_weight)
        self.tau = tau
        self.topk = topk
        self.loss_weight = loss_weight

    def forward(self, preds_S: torch.Tensor, preds_T: TeacherLogits,
                gate_probs: torch.Tensor) -> torch.Tensor:
        """Args: preds_S (N, C[, H, W]); preds_T (N, E, C[, H, W]) or E x (N, C[, H, W]);
        gate_probs (N, E) router probabilities (only their ranking is used)."""
        stacked = stack_teachers(preds_T).detach()
        if stacked.shape[0] != preds_S.shape[0] or stacked.shape[2:] != preds_S.shape[1:]:
            raise ValueError(f'RoutedKDLoss: teacher logits {tuple(stacked.shape)} do not match '
                             f'student logits {tuple(preds_S.shape)} (expected (N, E, '
                             f'{", ".join(str(s) for s in preds_S.shape[1:])}))')
        if gate_probs.shape != stacked.shape[:2]:
            raise ValueError(f'RoutedKDLoss: gate_probs {tuple(gate_probs.shape)} must be '
                             f'(N, E) = {tuple(stacked.shape[:2])}')
        indices = topk_route(gate_probs.detach(), self.topk)  # (N, k)
        rows = torch.arange(stacked.shape[0], device=stacked.device)
        total = preds_S.new_zeros(())
        for i in range(self.topk):
            selected = stacked[rows, indices[:, i]]  # (N, C[, H, W])
            total = total + kl_per_sample(selected, preds_S, self.tau).mean()
        return self.loss_weight * self.tau**2 * total / self.topk


@MODELS.register_module()
class LoadBalanceLoss(nn.Module):
    r"""Load balancing of a router over E teachers (MST-Distill, official ``load_balancing_loss``).

    With router probabilities :math:`g \in \mathbb{R}^{N\times E}`:

    * ``mode='KL'`` (official default): :math:`\bar g_e = \frac1N\sum_n g_{ne}`,
      :math:`u_e = 1/E`,
      :math:`L = \frac{w}{E}\sum_e u_e(\log u_e - \log \bar g_e)`
      (``nn.KLDivLoss(reduction='batchmean')`` on the 1-D vector divides by E);
    * ``mode='CV'``: importance :math:`I_e = \sum_n g_{ne}`,
      :math:`L = w\,\mathrm{std}(I)/\mathrm{mean}(I)` (unbiased std).

    Args:
        mode (str): 'KL' or 'CV'.
        loss_weight (float): :math:`w` (official ``w_lb``, default 1; >= 0).
        allow_negative_weight (bool): accept ``loss_weight < 0``.
    """

    MODES = ('KL', 'CV')

    def __init__(self, mode: str = 'KL', loss_weight: float = 1.0,
                 allow_negative_weight: bool = False) -> None:
        super().__init__()
        check_loss_args(self, loss_weight=loss_weight, allow_negative_weight=allow_negative_weight)
        if mode not in self.MODES:
            raise ValueError(f'LoadBalanceLoss: mode={mode!r}; valid: {self.MODES}')
        self.mode = mode
        self.loss_weight = loss_weight

    def forward(self, gate_probs: torch.Tensor) -> torch.Tensor:
        """Args: gate_probs (N, E) router probabilities (rows sum to 1)."""
        if gate_probs.dim() != 2:
            raise ValueError(f'LoadBalanceLoss: gate_probs must be (N, E), got '
                             f'{tuple(gate_probs.shape)}')
        num_ways = gate_probs.shape[1]
        if self.mode == 'KL':
            mean_probs = gate_probs.mean(dim=0)
            uniform = torch.full_like(mean_probs, 1.0 / num_ways)
            loss = (uniform * (uniform.log() - mean_probs.log())).sum() / num_ways
        else:
            importance = gate_probs.sum(dim=0)
            loss = importance.std() / importance.mean()
        return self.loss_weight * loss


@MODELS.register_module()
class EnsembleKDLoss(nn.Module):
    r"""KD from a weighted ensemble of teachers' soft labels.

    .. math::
        p^{T} = \sum_e \alpha_e\,\mathrm{softmax}(z^{T_e}/\tau),\qquad
        L = w\,\tau^2\,\frac1N\sum_n \sum_c p^T_{nc}\,(\log p^T_{nc} - \log p^S_{nc})

    with :math:`\alpha = ` ``weights`` normalised to sum to 1 (uniform when None:
    the "average of teachers" baseline; one teacher: Hinton et al.'s KD).

    Args:
        tau (float): temperature.
        weights (list[float], optional): one non-negative weight per teacher.
        loss_weight (float): :math:`w` (>= 0).
        allow_negative_weight (bool): accept ``loss_weight < 0``.
    """

    def __init__(self, tau: float = 4.0, weights: Optional[Sequence[float]] = None,
                 loss_weight: float = 1.0, allow_negative_weight: bool = False) -> None:
        super().__init__()
        check_loss_args(self, tau=tau, loss_weight=loss_weight,
                        allow_negative_weight=allow_negative_weight)
        if weights is not None:
            weights = list(weights)
            check_loss_args(self, **{f'weights[{i}]': w for i, w in enumerate(weights)})
            weights = [float(w) for w in weights]
            if not weights or any(w < 0 for w in weights) or sum(weights) <= 0:
                raise ValueError(f'EnsembleKDLoss: weights must be non-negative with a positive '
                                 f'sum, got {weights}')
        self.tau = tau
        self.weights = weights
        self.loss_weight = loss_weight

    def forward(self, preds_S: torch.Tensor, preds_T: TeacherLogits) -> torch.Tensor:
        """Args: preds_S (N, C[, H, W]); preds_T (N, E, C[, H, W]) or E x (N, C[, H, W])."""
        stacked = stack_teachers(preds_T).detach()
        num_ways = stacked.shape[1]
        if self.weights is None:
            alpha = stacked.new_full((num_ways, ), 1.0 / num_ways)
        else:
            if len(self.weights) != num_ways:
                raise ValueError(f'EnsembleKDLoss: {len(self.weights)} weights for '
                                 f'{num_ways} teachers')
            alpha = stacked.new_tensor(self.weights)
            alpha = alpha / alpha.sum()
        shape = (1, num_ways) + (1, ) * (stacked.dim() - 2)
        # log p^T = logsumexp_e(log alpha_e + log_softmax(z^{T_e}/tau)): exact where the
        # mixture is tiny (no clamp of the probability before the log); a teacher with
        # weight 0 contributes log 0 = -inf, which logsumexp ignores.
        log_p_t = torch.logsumexp(
            F.log_softmax(stacked / self.tau, dim=2) + alpha.log().view(shape), dim=1)
        log_p_s = F.log_softmax(preds_S / self.tau, dim=1)
        per_position = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1)
        per_sample = per_position.reshape(per_position.shape[0], -1).mean(dim=1)
        return self.loss_weight * self.tau**2 * per_sample.mean()
