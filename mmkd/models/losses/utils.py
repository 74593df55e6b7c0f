"""Helpers shared by the losses."""
from __future__ import annotations

import torch


def logits_to_rows(logits: torch.Tensor) -> torch.Tensor:
    """Move the class dimension (dim 1) last and flatten the rest into rows.

    (N, C) stays as is; (N, C, H, W) becomes (N*H*W, C), so per-pixel logits of a
    segmenter are treated as N*H*W independent distributions.
    """
    if logits.dim() == 2:
        return logits
    if logits.dim() < 2:
        raise ValueError(f'logits need a class dimension, got shape {tuple(logits.shape)}')
    channels = logits.shape[1]
    return logits.movedim(1, -1).reshape(-1, channels)


def reduce_rows(values: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduce per-row loss values: 'batchmean'/'mean' (same for rows), 'sum', 'none'."""
    if reduction in ('batchmean', 'mean'):
        return values.mean()
    if reduction == 'sum':
        return values.sum()
    if reduction == 'none':
        return values
    raise ValueError(
        f"reduction={reduction!r} is not valid; choose 'batchmean', 'mean', 'sum' or 'none'")
