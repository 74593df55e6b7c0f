"""MST-Distill's masking networks: learned soft masks on a teacher's features.

Li et al., *MST-Distill: Mixture of Specialized Teachers for Cross-Modal Knowledge
Distillation*, ACM MM 2025 (official code: ``MaskNet_1d``/``MaskNet_2d`` in
``KD_methods/MST.py`` of github.com/Gray-OREO/MST-Distill).

A MaskNet is inserted (by a forward hook) after one layer of a frozen teacher and
multiplies that layer's output by a mask in (0, 1) predicted from the output
itself. Trained to bring the teacher's prediction towards the student's, it turns
the teacher into a "specialised teacher" whose modality-specific components are
suppressed. Architecture (D = feature dimension or channels, h = heads):

* the D feature values become a sequence of D tokens: ``Linear(D, H*D)`` reshaped
  to (N, D, H), with ``H = floor(D * hidden_dim_factor / h) * h`` (official:
  ``D // (2h) * h``, i.e. factor 1/2);
* multi-head self-attention over the D tokens (``h`` heads, width H);
* ``Linear(H, 1)`` and a sigmoid give one mask value per feature / channel.

``MaskNet2d`` first reduces a (N, C, H, W) map to (N, C): depthwise 3x3 conv with
stride 2, 1x1 conv, BatchNorm, ReLU, global average pooling; its mask is per channel.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from mmkd.registry import MODELS


def _hidden_dim(feat_dim: int, num_heads: int, hidden_dim: Optional[int],
                hidden_dim_factor: float, name: str) -> int:
    if feat_dim < 1 or num_heads < 1:
        raise ValueError(f'{name}: feat_dim and num_heads must be >= 1, got {feat_dim}, '
                         f'{num_heads}')
    if hidden_dim is None:
        hidden_dim = int(feat_dim * hidden_dim_factor) // num_heads * num_heads
    if hidden_dim < num_heads or hidden_dim % num_heads:
        raise ValueError(f'{name}: hidden_dim={hidden_dim} must be a positive multiple of '
                         f'num_heads={num_heads}; raise hidden_dim_factor or give hidden_dim')
    return hidden_dim


class _TokenMask(nn.Module):
    """(N, D) -> (N, D) mask: embed each feature as a token, self-attend, score."""

    def __init__(self, feat_dim: int, hidden_dim: int, num_heads: int) -> None:
        super().__init__()
        self.feat_dim = feat_dim
        self.hidden_dim = hidden_dim
        self.embed = nn.Linear(feat_dim, hidden_dim * feat_dim)
        self.attn = nn.MultiheadAttention(hidden_dim, num_heads, batch_first=True)
        self.score = nn.Linear(hidden_dim, 1)

    def forward(self, vec: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(vec).reshape(vec.shape[0], self.feat_dim, self.hidden_dim)
        attended, _ = self.attn(tokens, tokens, tokens, need_weights=False)
        return torch.sigmoid(self.score(attended).squeeze(-1))


@MODELS.register_module()
class MaskNet1d(nn.Module):
    """Feature-wise soft mask for vector features (N, D) (or (N, D, 1, 1)).

    Args:
        feat_dim (int): D, the feature dimension.
        num_heads (int): attention heads (official ``mask_head_num``: 3).
        hidden_dim (int, optional): token width H; overrides ``hidden_dim_factor``.
        hidden_dim_factor (float): H ~ D * factor (official: 0.5).

    ``forward(x)`` returns the masked feature ``x * mask(x)`` (same shape as x);
    ``mask(x)`` returns the mask, shaped to broadcast against x.
    """

    def __init__(self, feat_dim: int, num_heads: int = 3, hidden_dim: Optional[int] = None,
                 hidden_dim_factor: float = 0.5) -> None:
        super().__init__()
        hidden = _hidden_dim(feat_dim, num_heads, hidden_dim, hidden_dim_factor, 'MaskNet1d')
        self.feat_dim = feat_dim
        self.token_mask = _TokenMask(feat_dim, hidden, num_heads)

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        vec = x
        if x.dim() == 4 and x.shape[2:] == (1, 1):
            vec = x.flatten(1)
        if vec.dim() != 2 or vec.shape[1] != self.feat_dim:
            raise ValueError(f'MaskNet1d(feat_dim={self.feat_dim}) takes (N, {self.feat_dim}) '
                             f'or (N, {self.feat_dim}, 1, 1) features, got {tuple(x.shape)}; '
                             'use MaskNet2d for feature maps')
        return self.token_mask(vec).reshape(x.shape[:2] + (1, ) * (x.dim() - 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask(x)


@MODELS.register_module()
class MaskNet2d(nn.Module):
    """Channel-wise soft mask for feature maps (N, C, H, W).

    Args:
        channels (int): C.
        num_heads (int): attention heads (official: 3).
        hidden_dim (int, optional): token width; overrides ``hidden_dim_factor``.
        hidden_dim_factor (float): token width ~ C * factor (official: 0.5).
    """

    def __init__(self, channels: int, num_heads: int = 3, hidden_dim: Optional[int] = None,
                 hidden_dim_factor: float = 0.5) -> None:
        super().__init__()
        hidden = _hidden_dim(channels, num_heads, hidden_dim, hidden_dim_factor, 'MaskNet2d')
        self.channels = channels
        self.reduce = nn.Sequential(
            nn.Conv2d(channels, channels, 3, stride=2, padding=1, groups=channels, bias=False),
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
        )
        self.token_mask = _TokenMask(channels, hidden, num_heads)

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f'MaskNet2d(channels={self.channels}) takes (N, {self.channels}, '
                             f'H, W) feature maps, got {tuple(x.shape)}; use MaskNet1d for '
                             'vectors')
        vec = self.reduce(x).flatten(1)
        return self.token_mask(vec)[:, :, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask(x)
