"""Token-level mimic distillation of a causal (multimodal) LM, as in LLaVA-MoD."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from mmkd.registry import MODELS

from .utils import check_loss_args

POSITIONS = ('response', 'all')


def next_token_mask(labels: Optional[torch.Tensor], attention_mask: Optional[torch.Tensor],
                    positions: str, ignore_index: int = -100,
                    shape: Optional[torch.Size] = None) -> torch.Tensor:
    """Which logit positions take part, after the causal shift.

    The logits at position t predict token t+1, so position t (t < L-1) is kept when
    token t+1 is a response token (``labels[t+1] != ignore_index``; ``'response'``) or
    a real, non-padding token (``attention_mask[t] == attention_mask[t+1] == 1``;
    ``'all'``: instruction, image and response tokens; every position when no mask is
    given, ``shape`` = (B, L) then). The last position predicts nothing and is never kept.

    Returns:
        Tensor: bool mask of shape (B, L-1).
    """
    if positions not in POSITIONS:
        raise ValueError(f'positions={positions!r} is not valid; valid: {list(POSITIONS)}')
    if positions == 'response':
        if labels is None:
            raise ValueError("positions='response' needs `labels` (response tokens, -100 elsewhere)")
        return labels[:, 1:] != ignore_index
    if attention_mask is None:
        ref = labels if labels is not None else None
        b, length = (ref.shape if ref is not None else shape)[:2]
        return torch.ones(b, length - 1, dtype=torch.bool,
                          device=ref.device if ref is not None else None)
    # Both ends real: position t is a real token and so is the token it predicts.
    return attention_mask[:, 1:].bool() & attention_mask[:, :-1].bool()


@MODELS.register_module()
class MimicKLLoss(nn.Module):
    r"""Forward KL from the teacher's to the student's next-token distributions.

    "LLaVA-MoD: Making LLaVA Tiny via MoE Knowledge Distillation", Shu et al., ICLR
    2025, mimic distillation). With :math:`\mathcal{T}` the kept positions
    (see :func:`next_token_mask`: response tokens by default, or every real token),

    .. math::
        L = \frac{w\,\tau^2}{|\mathcal{T}|}\sum_{t\in\mathcal{T}}\sum_{v}
            p^T_{t,v}\,(\log p^T_{t,v} - \log p^S_{t,v}),\qquad
            p_t = \mathrm{softmax}(z_t/\tau).

    The official code minimises the cross-entropy :math:`-\sum_v p^T\log p^S`, which
    differs from this KL by the teacher's entropy, a constant: same gradients, but the
    logged value here is 0 when the student matches the teacher. The teacher logits are
    a target (detached); the sum runs in fp32 whatever the logits' dtype.

    Args:
        positions (str): 'response' (official default, ``DISTILL_ALL_TOKENS=False``)
            or 'all' (multimodal instruction + response).
        tau (float): temperature (the paper uses 1).
        vocab_size (int, optional): compare only the first ``vocab_size`` logits (when
            one model pads its vocabulary); otherwise both vocabularies must be equal.
        ignore_index (int): label of non-response tokens.
        loss_weight (float): :math:`w` (>= 0).
        allow_negative_weight (bool): accept ``loss_weight < 0``.
    """

    paired_inputs = (('student_logits', 'teacher_logits'), )

    def __init__(self, positions: str = 'response', tau: float = 1.0, vocab_size: Optional[int] = None,
                 ignore_index: int = -100, loss_weight: float = 1.0,
                 allow_negative_weight: bool = False) -> None:
        super().__init__()
        check_loss_args(self, tau=tau, vocab_size=vocab_size, ignore_index=ignore_index,
                        loss_weight=loss_weight, integers=('vocab_size', 'ignore_index'),
                        positive=('vocab_size', ), optional=('vocab_size', ),
                        allow_negative_weight=allow_negative_weight)
        if positions not in POSITIONS:
            raise ValueError(f'positions={positions!r} is not valid; valid: {list(POSITIONS)}')
        self.positions, self.tau, self.vocab_size = positions, tau, vocab_size
        self.ignore_index, self.loss_weight = ignore_index, loss_weight

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                labels: Optional[torch.Tensor] = None,
                attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Args:
            student_logits (Tensor): (B, L, V) student logits.
            teacher_logits (Tensor): (B, L, V') teacher logits on the same sequence.
            labels (Tensor, optional): (B, L) token ids, ``ignore_index`` outside responses.
            attention_mask (Tensor, optional): (B, L), 1 on real tokens.
        """
        if student_logits.shape[:2] != teacher_logits.shape[:2]:
            raise ValueError(f'MimicKLLoss: student logits {tuple(student_logits.shape)} and teacher '
                             f'logits {tuple(teacher_logits.shape)} cover different sequences')
        vs, vt = student_logits.shape[-1], teacher_logits.shape[-1]
        if self.vocab_size is not None:
            if min(vs, vt) < self.vocab_size:
                raise ValueError(f'MimicKLLoss: vocab_size={self.vocab_size} exceeds the logits '
                                 f'(student {vs}, teacher {vt})')
            student_logits = student_logits[..., :self.vocab_size]
            teacher_logits = teacher_logits[..., :self.vocab_size]
        elif vs != vt:
            raise ValueError(f'MimicKLLoss: student vocabulary {vs} != teacher vocabulary {vt}; '
                             'teacher and student must share a tokenizer (set vocab_size= to compare '
                             'only a shared prefix of padded vocabularies)')
        mask = next_token_mask(labels, attention_mask, self.positions, self.ignore_index,
                               shape=student_logits.shape)
        mask = mask.to(student_logits.device)
        s = student_logits[:, :-1][mask].float() / self.tau
        t = teacher_logits[:, :-1][mask].detach().float() / self.tau
        if s.shape[0] == 0:
            # No kept position in the batch: a zero that still depends on the student.
            return student_logits.sum() * 0.0
        log_p_s = F.log_softmax(s, dim=-1)
        log_p_t = F.log_softmax(t, dim=-1)
        per_token = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=-1)
        return self.loss_weight * self.tau**2 * per_token.mean()
