"""MST-Distill's router (GateNet): student logits -> one score per teacher.

Li et al., MST-Distill, ACM MM 2025; official ``GateNet``/``GateNet_dense`` in
``KD_methods/MST.py`` of github.com/Gray-OREO/MST-Distill.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmkd.registry import MODELS


@MODELS.register_module()
class GateNet(nn.Module):
    """Two linear layers ``C -> 2C -> E`` on (N, C) logits, returning (N, E) scores.

    As in the official code there is no non-linearity between the two layers.

    Args:
        num_classes (int): C, size of the student's logits.
        num_ways (int): E, number of (specialised) teachers.
    """

    def __init__(self, num_classes: int, num_ways: int) -> None:
        super().__init__()
        if num_classes < 1 or num_ways < 1:
            raise ValueError(f'GateNet: num_classes and num_ways must be >= 1, got '
                             f'{num_classes}, {num_ways}')
        self.num_classes = num_classes
        self.fc1 = nn.Linear(num_classes, 2 * num_classes)
        self.fc2 = nn.Linear(2 * num_classes, num_ways)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        if logits.dim() != 2 or logits.shape[1] != self.num_classes:
            raise ValueError(f'GateNet(num_classes={self.num_classes}) takes (N, '
                             f'{self.num_classes}) logits, got {tuple(logits.shape)}; use '
                             'DenseGateNet for (N, C, H, W) logits')
        return self.fc2(self.fc1(logits))


@MODELS.register_module()
class DenseGateNet(nn.Module):
    """Router for dense (N, C, H, W) logits (official ``GateNet_dense``, NYU-Depth-V2).

    1x1 conv C -> 2C, ReLU, depthwise 3x3 conv (stride 2), ReLU, global average
    pooling, linear 2C -> E.

    Args:
        num_classes (int): C.
        num_ways (int): E.
    """

    def __init__(self, num_classes: int, num_ways: int) -> None:
        super().__init__()
        hidden = 2 * num_classes
        self.num_classes = num_classes
        self.pointwise = nn.Conv2d(num_classes, hidden, 1)
        self.depthwise = nn.Conv2d(hidden, hidden, 3, stride=2, padding=1, groups=hidden)
        self.fc = nn.Linear(hidden, num_ways)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        if logits.dim() != 4 or logits.shape[1] != self.num_classes:
            raise ValueError(f'DenseGateNet(num_classes={self.num_classes}) takes (N, '
                             f'{self.num_classes}, H, W) logits, got {tuple(logits.shape)}')
        x = F.relu(self.pointwise(logits))
        x = F.relu(self.depthwise(x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))
