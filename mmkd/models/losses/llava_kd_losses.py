r"""LLaVA-KD losses: multimodal distillation (MDist) and relation distillation (RDist).

"LLaVA-KD: A Framework of Distilling Multimodal Large Language Models", Cai et al.,
arXiv:2410.16236 (ICCV 2025).

Position convention (transformers'): ``logits[:, t]`` is the distribution of token
``t + 1``, and ``labels`` are *not* shifted. So

* the response distributions :math:`\phi(y_m \mid y_{<m})` are the logits at the
  positions ``t`` with ``labels[:, t + 1] != -100`` (:func:`response_positions`);
* the visual distributions :math:`\phi(Y_k \mid y_{<k})` of the paper's MDist are
  the logits at the positions ``t`` whose *next* token ``t + 1`` is an image token
  (:func:`visual_positions` with ``shift=True``, the default). ``shift=False`` takes
  the logits *at* the image-token positions instead (what one public
  re-implementation does; the official training code is not released).
"""
from __future__ import annotations

from typing import Dict, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from mmkd.registry import MODELS

from .utils import check_loss_args

IGNORE_INDEX = -100


def response_positions(labels: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: logits positions whose next-token target is a response token."""
    out = torch.zeros_like(labels, dtype=torch.bool)
    out[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    return out


def visual_positions(image_token_mask: torch.Tensor, shift: bool = True) -> torch.Tensor:
    """(B, T) bool: logits positions of the visual tokens.

    ``shift=True``: the positions that *predict* an image token (``t`` with
    ``mask[:, t + 1]``); ``shift=False``: the image-token positions themselves.
    """
    mask = image_token_mask.bool()
    if not shift:
        return mask
    out = torch.zeros_like(mask)
    out[:, :-1] = mask[:, 1:]
    return out


def token_kl(s_logits: torch.Tensor, t_logits: torch.Tensor, positions: torch.Tensor,
             tau: float = 1.0, direction: str = 'forward') -> torch.Tensor:
    r"""Mean over the selected positions of a KL divergence between token distributions.

    ``'forward'``: :math:`\mathrm{KL}(p^T \| p^S) = \sum_v p^T_v(\log p^T_v - \log p^S_v)`;
    ``'reverse'``: :math:`\mathrm{KL}(p^S \| p^T)`. Both with temperature :math:`\tau`
    and the :math:`\tau^2` factor. Computed in float32; 0 (with a graph) when no
    position is selected. The teacher logits are detached.
    """
    if s_logits.shape != t_logits.shape:
        raise ValueError(f'student logits {tuple(s_logits.shape)} and teacher logits '
                         f'{tuple(t_logits.shape)} differ: teacher and student must share one '
                         'vocabulary and see the same token sequence')
    if not bool(positions.any()):
        return s_logits.sum() * 0.0
    s = s_logits[positions].float() / tau
    t = t_logits.detach()[positions].float() / tau
    log_s, log_t = F.log_softmax(s, -1), F.log_softmax(t, -1)
    if direction == 'forward':
        per_token = (log_t.exp() * (log_t - log_s)).sum(-1)
    else:
        per_token = (log_s.exp() * (log_s - log_t)).sum(-1)
    return per_token.mean() * tau**2


@MODELS.register_module()
class MDistLoss(nn.Module):
    r"""LLaVA-KD multimodal distillation: KL at response and at visual positions.

    .. math::
        L_{res} = \frac{1}{M}\sum_{m=1}^{M}\mathrm{KL}\big(\phi_T(y_m\mid y_{<m})\,\|\,
                  \phi_S(y_m\mid y_{<m})\big),\quad
        L_{vis} = \frac{1}{K}\sum_{k=1}^{K}\mathrm{KL}\big(\phi_T(Y_k\mid y_{<k})\,\|\,
                  \phi_S(Y_k\mid y_{<k})\big)\\
        L_{MDist} = w\,(w_{res} L_{res} + w_{vis} L_{vis})

    over the M response and K visual positions of the whole batch (see the module
    docstring for the positions and the label shift). The paper writes
    :math:`\mathrm{KLD}(\phi_l, \phi_s)`, teacher first: forward KL, the default;
    it uses no temperature (:math:`\tau = 1`) and sums over tokens; here the sums
    are means over tokens so the scale does not grow with the sequence length.

    Args:
        loss_weight (float): :math:`w` (the :math:`\alpha` of CE + alpha MDist + beta RDist).
        response_weight (float): :math:`w_{res}`.
        visual_weight (float): :math:`w_{vis}` (0 = text-only logit distillation).
        tau (float): temperature.
        direction (str): 'forward' (KL(T||S), the paper) or 'reverse'.
        visual_shift (bool): see :func:`visual_positions`.
        allow_negative_weight (bool): accept ``loss_weight < 0``.
    """

    def __init__(self, loss_weight: float = 1.0, response_weight: float = 1.0,
                 visual_weight: float = 1.0, tau: float = 1.0, direction: str = 'forward',
                 visual_shift: bool = True, allow_negative_weight: bool = False) -> None:
        super().__init__()
        check_loss_args(self, loss_weight=loss_weight, response_weight=response_weight,
                        visual_weight=visual_weight, tau=tau,
                        allow_negative_weight=allow_negative_weight)
        if direction not in ('forward', 'reverse'):
            raise ValueError(f"MDistLoss.direction={direction!r}; valid: 'forward', 'reverse'")
        self.loss_weight = loss_weight
        self.response_weight, self.visual_weight = response_weight, visual_weight
        self.tau, self.direction, self.visual_shift = tau, direction, visual_shift

    def forward(self, s_logits: torch.Tensor, t_logits: torch.Tensor, labels: torch.Tensor,
                image_token_mask: torch.Tensor, return_parts: bool = False
                ) -> Union[torch.Tensor, Dict[str, torch.Tensor]]:
        """MDist at the response and visual positions.

        Args:
            s_logits, t_logits (B, T, V): student / teacher logits on the same sequence.
            labels (B, T): unshifted labels, -100 outside the response.
            image_token_mask (B, T): True at the ``<image>`` tokens.
            return_parts (bool): return ``dict(res=..., vis=...)`` (each already
                weighted; their sum is the loss) instead of the sum.
        """
        res = token_kl(s_logits, t_logits, response_positions(labels), self.tau, self.direction)
        vis = token_kl(s_logits, t_logits, visual_positions(image_token_mask, self.visual_shift),
                       self.tau, self.direction)
        parts = dict(res=self.loss_weight * self.response_weight * res,
                     vis=self.loss_weight * self.visual_weight * vis)
        return parts if return_parts else parts['res'] + parts['vis']


def select_visual_tokens(x: torch.Tensor, image_token_mask: torch.Tensor, shift: bool = True
                         ) -> torch.Tensor:
    """(B, K, C) rows of ``x`` (B, T, C) at the visual positions (K per sample)."""
    pos = visual_positions(image_token_mask, shift)
    counts = pos.sum(1)
    if bool((counts != counts[0]).any()):
        raise ValueError(f'every sample needs the same number of visual tokens, got {counts.tolist()}')
    return x[pos].view(x.shape[0], int(counts[0]), x.shape[-1])


@MODELS.register_module()
class RDistLoss(nn.Module):
    r"""LLaVA-KD relation distillation: match the visual tokens' self-correlation.

    For each sample, with the K visual tokens of the student :math:`V^S\in\mathbb R^{K\times C_S}`
    and of the teacher :math:`V^T\in\mathbb R^{K\times C_T}` (the widths may differ):

    .. math::
        R^S = V^S {V^S}^\top,\quad R^T = V^T {V^T}^\top \in \mathbb R^{K\times K}\\
        L_{RDist} = w\,\frac{1}{B}\sum_b \Big(1 - \cos\big(\mathrm{vec}(R^S_b),
                    \mathrm{vec}(R^T_b)\big)\Big)

    The paper defines RDist as one minus the cosine similarity of the two
    self-correlation matrices; it is silent on the batch reduction, here the mean
    of the per-sample values (so the loss does not depend on the batch size).

    Args:
        loss_weight (float): :math:`w` (the :math:`\beta` of CE + alpha MDist + beta RDist).
        normalize_tokens (bool): L2-normalise the tokens first (cosine-similarity
            matrices instead of raw Gram matrices). Default False (the paper's
            :math:`V V^\top`).
        allow_negative_weight (bool): accept ``loss_weight < 0``.
    """

    def __init__(self, loss_weight: float = 1.0, normalize_tokens: bool = False,
                 allow_negative_weight: bool = False) -> None:
        super().__init__()
        check_loss_args(self, loss_weight=loss_weight, allow_negative_weight=allow_negative_weight)
        self.loss_weight, self.normalize_tokens = loss_weight, normalize_tokens

    def forward(self, s_tokens: torch.Tensor, t_tokens: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """RDist between the two visual-token self-correlation matrices.

        Args:
            s_tokens (B, K, C_S), t_tokens (B, K, C_T): the visual tokens (e.g. the
                logits at the visual positions, :func:`select_visual_tokens`).
            mask: unused, for signature symmetry with the other losses.
        """
        if s_tokens.shape[:2] != t_tokens.shape[:2]:
            raise ValueError(f'RDistLoss: student {tuple(s_tokens.shape)} and teacher '
                             f'{tuple(t_tokens.shape)} need the same batch and number of visual tokens')
        s, t = s_tokens.float(), t_tokens.detach().float()
        if self.normalize_tokens:
            s, t = F.normalize(s, dim=-1), F.normalize(t, dim=-1)
        r_s = torch.bmm(s, s.transpose(1, 2)).flatten(1)
        r_t = torch.bmm(t, t.transpose(1, 2)).flatten(1)
        return self.loss_weight * (1.0 - F.cosine_similarity(r_s, r_t, dim=1, eps=1e-8)).mean()
