"""Conversions between ViT tokens (N, L, C) and CNN maps (N, C, H, W)."""
from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from mmkd.registry import MODELS


def _pair(size: Optional[Union[int, Sequence[int]]]):
    if size is None:
        return None
    if isinstance(size, int):
        return (size, size)
    return tuple(size)


@MODELS.register_module()
class TokensToMap(nn.Module):
    """(N, L, C) tokens -> (N, C', H, W) map, optional projection and resize.

    Leading non-patch tokens (cls/distillation tokens) are dropped with
    ``num_extra_tokens``. The grid is ``hw_shape`` when given, else square
    (``sqrt(L)``; a non-square count without ``hw_shape`` is an error).

    Args:
        in_channels (int): token width C.
        out_channels (int, optional): output channels (1x1 conv when != C).
        num_extra_tokens (int): tokens at the front that are not patches.
        hw_shape (tuple, optional): patch grid (H, W).
        out_size (int | tuple, optional): resize the map to this size (bilinear).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: Optional[int] = None,
                 num_extra_tokens: int = 0,
                 hw_shape: Optional[Sequence[int]] = None,
                 out_size: Optional[Union[int, Sequence[int]]] = None) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_extra_tokens = num_extra_tokens
        self.hw_shape = _pair(hw_shape)
        self.out_size = _pair(out_size)
        out_channels = out_channels or in_channels
        self.proj = nn.Conv2d(in_channels, out_channels, 1) if out_channels != in_channels else None

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 3 or tokens.shape[-1] != self.in_channels:
            raise ValueError(f'TokensToMap expects (N, L, {self.in_channels}) tokens, '
                             f'got {tuple(tokens.shape)}')
        tokens = tokens[:, self.num_extra_tokens:]
        n, length, c = tokens.shape
        if self.hw_shape is not None:
            h, w = self.hw_shape
        else:
            h = w = int(math.isqrt(length))
        if h * w != length:
            raise ValueError(f'TokensToMap: {length} patch tokens do not form a '
                             f'{h}x{w} grid; set hw_shape (or num_extra_tokens)')
        fmap = tokens.transpose(1, 2).reshape(n, c, h, w)
        if self.proj is not None:
            fmap = self.proj(fmap)
        if self.out_size is not None and fmap.shape[-2:] != self.out_size:
            fmap = F.interpolate(fmap, size=self.out_size, mode='bilinear', align_corners=False)
        return fmap


@MODELS.register_module()
class MapToTokens(nn.Module):
    """``(N, C, H, W)`` map -> ``(N, H'*W', C')`` tokens, optional resize and projection.

    Args:
        in_channels (int): map channels C.
        out_channels (int, optional): token width (linear projection when != C).
        out_size (int | tuple, optional): resize the map to this grid first.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: Optional[int] = None,
                 out_size: Optional[Union[int, Sequence[int]]] = None) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_size = _pair(out_size)
        out_channels = out_channels or in_channels
        self.proj = nn.Linear(in_channels, out_channels) if out_channels != in_channels else None

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        if fmap.dim() != 4 or fmap.shape[1] != self.in_channels:
            raise ValueError(f'MapToTokens expects (N, {self.in_channels}, H, W), '
                             f'got {tuple(fmap.shape)}')
        if self.out_size is not None and fmap.shape[-2:] != self.out_size:
            fmap = F.interpolate(fmap, size=self.out_size, mode='bilinear', align_corners=False)
        tokens = fmap.flatten(2).transpose(1, 2)
        if self.proj is not None:
            tokens = self.proj(tokens)
        return tokens


@MODELS.register_module()
class Resize(nn.Module):
    """Parameter-free bilinear resize of NCHW maps (e.g. logits of different strides)."""

    def __init__(self, size: Union[int, Sequence[int]], mode: str = 'bilinear') -> None:
        super().__init__()
        self.size = _pair(size)
        self.mode = mode

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        if fmap.shape[-2:] == self.size:
            return fmap
        kwargs = {} if self.mode == 'nearest' else {'align_corners': False}
        return F.interpolate(fmap, size=self.size, mode=self.mode, **kwargs)
