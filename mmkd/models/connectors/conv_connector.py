"""Convolutional connectors that map student feature maps to the teacher's channels."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from mmkd.registry import MODELS


def _build_norm(norm_cfg: Optional[dict], channels: int) -> Optional[nn.Module]:
    if norm_cfg is None:
        return None
    kind = norm_cfg.get('type', 'BN')
    if kind in ('BN', 'BN2d', 'SyncBN'):
        # SyncBN turns into BN on one process; mmengine's revert/convert handles DDP.
        return nn.BatchNorm2d(channels)
    if kind == 'GN':
        return nn.GroupNorm(norm_cfg.get('num_groups', 32), channels)
    if kind == 'LN':
        return nn.GroupNorm(1, channels)
    raise ValueError(f"norm_cfg.type={kind!r} is not supported; valid: 'BN', 'GN', 'LN'")


def _build_act(act_cfg: Optional[dict]) -> Optional[nn.Module]:
    if act_cfg is None:
        return None
    kind = act_cfg.get('type', 'ReLU')
    acts = {'ReLU': nn.ReLU, 'GELU': nn.GELU, 'SiLU': nn.SiLU, 'LeakyReLU': nn.LeakyReLU}
    if kind not in acts:
        raise ValueError(f'act_cfg.type={kind!r} is not supported; valid: {sorted(acts)}')
    return acts[kind]()


@MODELS.register_module()
class ConvConnector(nn.Module):
    """Conv(kxk) -> optional norm -> optional activation, on NCHW maps.

    The FitNet regressor (Romero et al., 2015) is ``kernel_size=1`` or ``3`` without
    norm/act. Channel counts are checked on every call so a wrong config fails with
    a message naming the connector's channels instead of a cryptic conv error.

    Args:
        in_channels (int): student channels.
        out_channels (int): teacher channels.
        kernel_size (int): 1 or 3 (odd sizes keep the spatial size).
        norm_cfg (dict, optional): ``dict(type='BN'|'GN'|'LN')``.
        act_cfg (dict, optional): ``dict(type='ReLU'|'GELU'|'SiLU'|'LeakyReLU')``.
        bias (bool): conv bias (default: True when no norm).
        out_size (int | tuple, optional): bilinear resize of the output map, for
            pairs whose maps differ in stride (e.g. a ViT teacher at stride 16 and
            a CNN stage at stride 32).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 1,
                 norm_cfg: Optional[dict] = None,
                 act_cfg: Optional[dict] = None,
                 bias: Optional[bool] = None,
                 out_size=None) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f'kernel_size must be odd to keep the map size, got {kernel_size}')
        self.in_channels, self.out_channels = in_channels, out_channels
        bias = norm_cfg is None if bias is None else bias
        layers = [nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)]
        for extra in (_build_norm(norm_cfg, out_channels), _build_act(act_cfg)):
            if extra is not None:
                layers.append(extra)
        self.layers = nn.Sequential(*layers)
        self.out_size = (out_size, out_size) if isinstance(out_size, int) else (
            tuple(out_size) if out_size is not None else None)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        if feature.dim() != 4 or feature.shape[1] != self.in_channels:
            raise ValueError(
                f'{type(self).__name__} expects NCHW input with in_channels='
                f'{self.in_channels}, got shape {tuple(feature.shape)}')
        out = self.layers(feature)
        if self.out_size is not None and tuple(out.shape[-2:]) != self.out_size:
            out = torch.nn.functional.interpolate(out, size=self.out_size, mode='bilinear',
                                                  align_corners=False)
        return out
