"""Linear connector for vector or token features."""
from __future__ import annotations

import torch
from torch import nn

from mmkd.registry import MODELS


@MODELS.register_module()
class LinearConnector(nn.Module):
    """``y = x W^T + b`` over the last dimension (N x C or N x L x C inputs).

    Args:
        in_features (int): student feature size.
        out_features (int): teacher feature size.
        bias (bool): whether to learn a bias.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features = in_features
        self.linear = nn.Linear(in_features, out_features, bias=bias)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        if feature.shape[-1] != self.in_features:
            raise ValueError(
                f'LinearConnector expects last dimension in_features={self.in_features}, '
                f'got shape {tuple(feature.shape)}')
        return self.linear(feature)
