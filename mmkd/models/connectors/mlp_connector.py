"""Two-layer MLP connector (G2SD's feature predictor)."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from mmkd.registry import MODELS

_ACTS = {'GELU': nn.GELU, 'ReLU': nn.ReLU, 'SiLU': nn.SiLU}


@MODELS.register_module()
class MLPConnector(nn.Module):
    """``fc2(drop(act(fc1(x))))`` over the last dimension (N x C or N x L x C inputs).

    G2SD (Huang et al., CVPR 2023) maps the student decoder's hidden states to the
    teacher decoder's width with such a predictor (hidden width = output width,
    GELU).

    Args:
        in_features (int): student feature size.
        out_features (int): teacher feature size.
        hidden_features (int, optional): defaults to ``out_features``.
        act (str): 'GELU' (default), 'ReLU' or 'SiLU'.
        drop (float): dropout after the activation.
    """

    def __init__(self, in_features: int, out_features: int,
                 hidden_features: Optional[int] = None, act: str = 'GELU',
                 drop: float = 0.0) -> None:
        super().__init__()
        if act not in _ACTS:
            raise ValueError(f'MLPConnector act={act!r}; valid: {sorted(_ACTS)}')
        hidden = hidden_features or out_features
        self.in_features = in_features
        self.fc1 = nn.Linear(in_features, hidden)
        self.act = _ACTS[act]()
        self.drop = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden, out_features)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        if feature.shape[-1] != self.in_features:
            raise ValueError(
                f'MLPConnector expects last dimension in_features={self.in_features}, '
                f'got shape {tuple(feature.shape)}')
        return self.fc2(self.drop(self.act(self.fc1(feature))))
