"""Preference distillation losses with a frozen teacher as reference model (LLaVA-MoD)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmkd.registry import MODELS

from .utils import check_loss_args


def sequence_log_probs(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100,
                       average: bool = False) -> torch.Tensor:
    r"""Log-probability of each sequence's response, :math:`\sum_t \log p(y_{t+1}\mid y_{\le t})`.

    Causal shift: the logits at position t score the label at t+1; positions whose
    next label is ``ignore_index`` (prompt, image, padding) do not count.

    Args:
        logits (Tensor): (B, L, V).
        labels (Tensor): (B, L), ``ignore_index`` outside the response.
        average (bool): mean instead of sum over the response tokens.

    Returns:
        Tensor: (B,) in fp32.
    """
    target = labels[:, 1:]
    mask = target != ignore_index
    safe = target.masked_fill(~mask, 0)
    logp = F.log_softmax(logits[:, :-1].float(), dim=-1)
    per_token = torch.gather(logp, 2, safe.unsqueeze(-1)).squeeze(-1) * mask
    total = per_token.sum(-1)
    return total / mask.sum(-1).clamp(min=1) if average else total


def _check_same_shape(**tensors: torch.Tensor) -> None:
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f'preference loss inputs must have equal shapes (one value per pair), got {shapes}')


@MODELS.register_module()
class DPOLoss(nn.Module):
    r"""Direct Preference Optimization with the frozen teacher as the reference model.

    Rafailov et al., NeurIPS 2023; used for preference distillation in LLaVA-MoD (Shu
    et al., ICLR 2025), where the reference :math:`\pi_{ref}` is the large
    teacher, not a copy of the student. With sequence log-probabilities of the
    chosen (:math:`y_w`) and rejected (:math:`y_l`) responses,

    .. math::
        h = \big(\log\pi_S(y_w) - \log\pi_S(y_l)\big) -
            \big(\log\pi_T(y_w) - \log\pi_T(y_l)\big)\\
        L = w\cdot\mathrm{mean}\big[-(1-\epsilon)\log\sigma(\beta h) - \epsilon\log\sigma(-\beta h)\big]

    (:math:`\epsilon` = conservative-DPO label smoothing, 0 by default). The official
    trainer's default :math:`\beta` is 0.1.

    Args:
        beta (float): :math:`\beta` (> 0).
        label_smoothing (float): :math:`\epsilon` in [0, 0.5).
        loss_weight (float): :math:`w` (>= 0).
        allow_negative_weight (bool): accept ``loss_weight < 0``.
    """

    def __init__(self, beta: float = 0.1, label_smoothing: float = 0.0, loss_weight: float = 1.0,
                 allow_negative_weight: bool = False) -> None:
        super().__init__()
        check_loss_args(self, beta=beta, label_smoothing=label_smoothing, loss_weight=loss_weight,
                        positive=('beta', ), allow_negative_weight=allow_negative_weight)
        if not 0 <= label_smoothing < 0.5:
            raise ValueError(f'label_smoothing must be in [0, 0.5), got {label_smoothing}')
        self.beta, self.label_smoothing, self.loss_weight = beta, label_smoothing, loss_weight

    def forward(self, policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
                reference_chosen_logps: torch.Tensor, reference_rejected_logps: torch.Tensor) -> torch.Tensor:
        """Args: (B,) sequence log-probabilities (student = policy, teacher = reference)."""
        _check_same_shape(policy_chosen_logps=policy_chosen_logps,
                          policy_rejected_logps=policy_rejected_logps,
                          reference_chosen_logps=reference_chosen_logps,
                          reference_rejected_logps=reference_rejected_logps)
        h = (policy_chosen_logps - policy_rejected_logps) - \
            (reference_chosen_logps - reference_rejected_logps).detach()
        eps = self.label_smoothing
        losses = -(1 - eps) * F.logsigmoid(self.beta * h) - eps * F.logsigmoid(-self.beta * h)
        return self.loss_weight * losses.mean()


@MODELS.register_module()
class KTOPairLoss(nn.Module):
    r"""Paired KTO loss (Ethayarajh et al., 2024, "KTO: Model Alignment as Prospect
    Theoretic Optimization", Eq. 7 of the HALOs report), the ``loss_type='kto_pair'``
    the official LLaVA-MoD preference-distillation script selects.

    With log-ratios :math:`r_w = \log\pi_S(y_w) - \log\pi_T(y_w)` and
    :math:`r_l = \log\pi_S(y_l) - \log\pi_T(y_l)`, the KL reference points are batch
    means clamped at zero, each estimated on the *other* half of the pairs:
    :math:`z_w = \max(0, \overline{r_w})`, :math:`z_l = \max(0, \overline{r_l})`, and

    .. math::
        L = \frac{w}{2B}\sum_{i=1}^{B}\Big[\big(1-\sigma(\beta(r_{w,i} - z_l))\big) +
            \big(1-\sigma(\beta(z_w - r_{l,i}))\big)\Big].

    As in the official trainer the reference points are not detached.
    :math:`1 - \sigma(x)` is computed as :math:`\sigma(-x)` (equal, but it does not
    round to 0 in float32 once :math:`x > 17`, so large log-ratios keep their small
    value and gradient).

    Args:
        beta (float): :math:`\beta` (> 0; official default 0.1).
        loss_weight (float): :math:`w` (>= 0).
        allow_negative_weight (bool): accept ``loss_weight < 0``.
    """

    def __init__(self, beta: float = 0.1, loss_weight: float = 1.0,
                 allow_negative_weight: bool = False) -> None:
        super().__init__()
        check_loss_args(self, beta=beta, loss_weight=loss_weight, positive=('beta', ),
                        allow_negative_weight=allow_negative_weight)
        self.beta, self.loss_weight = beta, loss_weight

    def forward(self, policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
                reference_chosen_logps: torch.Tensor, reference_rejected_logps: torch.Tensor) -> torch.Tensor:
        """Args: (B,) sequence log-probabilities (student = policy, teacher = reference)."""
        _check_same_shape(policy_chosen_logps=policy_chosen_logps,
                          policy_rejected_logps=policy_rejected_logps,
                          reference_chosen_logps=reference_chosen_logps,
                          reference_rejected_logps=reference_rejected_logps)
        r_w = policy_chosen_logps - reference_chosen_logps.detach()
        r_l = policy_rejected_logps - reference_rejected_logps.detach()
        z_w = r_w.mean().clamp(min=0)
        z_l = r_l.mean().clamp(min=0)
        # 1 - sigmoid(x) == sigmoid(-x); the right side keeps its precision for large x
        losses = torch.cat([torch.sigmoid(-self.beta * (r_w - z_l)),
                            torch.sigmoid(-self.beta * (z_w - r_l))])
        return self.loss_weight * losses.mean()
