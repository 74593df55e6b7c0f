"""Align + random mask + generation block of Masked Generative Distillation.

Yang et al., "Masked Generative Distillation", ECCV 2022 (arXiv:2205.01529).
:class:`MGDConnector` is the learnable part of MGD; :class:`~mmkd.models.losses.MGDLoss`
owns one and adds the squared-error term, so both spellings of an MGD config share
this code.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from mmkd.registry import MODELS

MASK_TYPES = ('spatial', 'channel')


def mgd_random_mask(shape: Sequence[int],
                    lambda_mgd: float,
                    mask_type: str = 'spatial',
                    device: Optional[torch.device] = None,
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    r"""Draw MGD's binary mask for an aligned feature of shape ``(N, C, H, W)``.

    .. math::
        M = \begin{cases} 0 & R < \lambda \\ 1 & \text{otherwise} \end{cases},
        \qquad R \sim U(0, 1)

    drawn independently per sample and per spatial position (``'spatial'``: shape
    ``(N, 1, H, W)``, shared by all channels) or per sample and per channel
    (``'channel'``: shape ``(N, C, 1, 1)``, shared by all positions). Each entry is
    0 with probability :math:`\lambda`.

    ``R`` comes from ``torch.rand`` on ``device``, i.e. from torch's default
    generator of that device, which ``torch.manual_seed`` (and mmengine's
    ``randomness=dict(seed=...)``) seeds: the same seed gives the same masks.

    Args:
        shape (Sequence[int]): (N, C, H, W) of the aligned feature.
        lambda_mgd (float): masking ratio :math:`\lambda` in [0, 1].
        mask_type (str): 'spatial' or 'channel'.
        device (torch.device, optional): where to draw the mask.
        dtype (torch.dtype): dtype of the returned 0/1 mask.

    Returns:
        Tensor: the mask, broadcastable to ``shape``.
    """
    if mask_type not in MASK_TYPES:
        raise ValueError(f'mask_type={mask_type!r} is not valid; choose one of {MASK_TYPES}')
    n, c, h, w = shape
    mask_shape = (n, 1, h, w) if mask_type == 'spatial' else (n, c, 1, 1)
    rand = torch.rand(mask_shape, device=device)
    return (rand >= lambda_mgd).to(dtype)


@MODELS.register_module()
class MGDConnector(nn.Module):
    r"""MGD's student branch: align, randomly mask, then generate the teacher feature.

    "Masked Generative Distillation", Yang et al., ECCV 2022 (arXiv:2205.01529):

    .. math::
        \tilde S = f_{align}(S) \\
        G = W_{l2}\big(\mathrm{ReLU}(W_{l1}(\tilde S \cdot M))\big)

    :math:`f_{align}` is a 1x1 convolution (with bias) when the student and teacher
    channel counts differ and the identity otherwise; :math:`W_{l1}, W_{l2}` are
    3x3 convolutions (padding 1, with bias) from C_T to C_T channels; :math:`M` is
    the random mask of :func:`mgd_random_mask` (applied after the alignment).

    In training mode :meth:`forward` draws a fresh mask on every call; in eval mode
    it applies no mask (:math:`M = 1`). Pair it with an L2 loss summed over
    C, H, W and divided by the batch size (``L2Loss(reduction='batchmean',
    loss_weight=alpha_mgd)``) to get MGD's objective, or use ``MGDLoss`` which
    holds one of these and always masks.

    Args:
        student_channels (int): channels of the student feature.
        teacher_channels (int): channels of the teacher feature (C_T).
        lambda_mgd (float): masking ratio in [0, 1]. Official settings: 0.65
            (one-stage detectors, SOLO), 0.45 (two-stage), 0.75 (segmentation),
            0.15 (classification, channel mask).
        mask_type (str): 'spatial' (detection, segmentation) or 'channel'
            (classification in the official code).
    """

    def __init__(self,
                 student_channels: int,
                 teacher_channels: int,
                 lambda_mgd: float = 0.65,
                 mask_type: str = 'spatial') -> None:
        super().__init__()
        for name, value in (('student_channels', student_channels),
                            ('teacher_channels', teacher_channels)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f'{name} must be a positive int, got {value!r}')
        if not 0.0 <= float(lambda_mgd) <= 1.0:
            raise ValueError(f'lambda_mgd must be in [0, 1], got {lambda_mgd!r}')
        if mask_type not in MASK_TYPES:
            raise ValueError(f'mask_type={mask_type!r} is not valid; choose one of {MASK_TYPES}')
        self.student_channels = student_channels
        self.teacher_channels = teacher_channels
        self.lambda_mgd = float(lambda_mgd)
        self.mask_type = mask_type
        if student_channels != teacher_channels:
            self.align = nn.Conv2d(student_channels, teacher_channels, kernel_size=1)
        else:
            self.align = nn.Identity()
        self.generation = nn.Sequential(
            nn.Conv2d(teacher_channels, teacher_channels, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(teacher_channels, teacher_channels, kernel_size=3, padding=1))

    def check_input(self, feature: torch.Tensor) -> None:
        """Raise a ValueError unless ``feature`` is NCHW with ``student_channels``."""
        if feature.dim() != 4 or feature.shape[1] != self.student_channels:
            raise ValueError(
                f'{type(self).__name__} expects an NCHW student feature with '
                f'student_channels={self.student_channels}, got shape {tuple(feature.shape)}')

    def random_mask(self, feature: torch.Tensor) -> torch.Tensor:
        """A fresh mask for the aligned version of the student ``feature``.

        Shape (N, 1, H, W) ('spatial') or (N, C_T, 1, 1) ('channel'); see
        :func:`mgd_random_mask`.
        """
        n, _, h, w = feature.shape
        return mgd_random_mask((n, self.teacher_channels, h, w), self.lambda_mgd, self.mask_type,
                               device=feature.device, dtype=feature.dtype)

    def generate(self, feature: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        r""":math:`W_{l2}(\mathrm{ReLU}(W_{l1}(f_{align}(S) \cdot M)))` with a given mask.

        Args:
            feature (Tensor): student feature (N, C_S, H, W).
            mask (Tensor, optional): broadcastable to (N, C_T, H, W), e.g. (N, 1, H, W)
                or (N, C_T, 1, 1); None means no masking.
        """
        self.check_input(feature)
        aligned = self.align(feature)
        if mask is not None:
            aligned = aligned * mask
        return self.generation(aligned)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        """Generated teacher-like feature (N, C_T, H, W); masked only in training mode."""
        self.check_input(feature)
        mask = self.random_mask(feature) if self.training and self.lambda_mgd > 0 else None
        return self.generate(feature, mask)

    def extra_repr(self) -> str:
        return f'lambda_mgd={self.lambda_mgd}, mask_type={self.mask_type!r}'
