"""Masked Generative Distillation (Yang et al., ECCV 2022)."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from mmkd.models.connectors.mgd_connector import MGDConnector
from mmkd.registry import MODELS

from .utils import check_loss_args


@MODELS.register_module()
class MGDLoss(nn.Module):
    r"""MGD: generate the teacher's full feature from a randomly masked student feature.

    "Masked Generative Distillation", Yang, Li, Shao, Shi, Yuan and Yuan, ECCV 2022
    (arXiv:2205.01529, official code github.com/yzd-v/MGD). For a student feature
    :math:`S \in \mathbb{R}^{N \times C_S \times H \times W}` and a teacher feature
    :math:`T \in \mathbb{R}^{N \times C_T \times H \times W}`:

    .. math::
        M_{n,i,j} = \begin{cases} 0 & R_{n,i,j} < \lambda \\ 1 & \text{otherwise}
            \end{cases}, \quad R \sim U(0, 1) \quad \text{(spatial mask)}\\
        M_{n,k} = \begin{cases} 0 & R_{n,k} < \lambda \\ 1 & \text{otherwise}
            \end{cases} \quad \text{(channel mask)}\\
        G = W_{l2}\big(\mathrm{ReLU}(W_{l1}(f_{align}(S) \cdot M))\big)\\
        L = w \cdot \alpha \cdot \frac{1}{N} \sum_{n=1}^{N} \sum_{k=1}^{C_T}
            \sum_{i=1}^{H} \sum_{j=1}^{W} \big(T_{n,k,i,j} - G_{n,k,i,j}\big)^2

    :math:`f_{align}` is a 1x1 conv when :math:`C_S \ne C_T` (identity otherwise);
    :math:`W_{l1}, W_{l2}` are 3x3 convs (C_T -> C_T, padding 1, with bias) with a
    ReLU between them; :math:`\alpha` is ``alpha_mgd``, :math:`\lambda` is
    ``lambda_mgd`` and :math:`w` is ``loss_weight``. The student's total loss is
    its task loss plus :math:`L`. The teacher feature is used as is (no
    normalisation; detached). A fresh mask is drawn on every call, also in eval
    mode, because the mask is part of the objective. The squared error is summed
    in (at least) float32 so that an fp16 (AMP) FPN level cannot overflow the sum.

    Per-task settings of the official configs (yzd-v/MGD):

    ============================================  ========  ====  =========  ================
    task / student (teacher)                      alpha     lam   mask       features
    ============================================  ========  ====  =========  ================
    RetinaNet R50 (RetinaNet X101-64x4d)          2e-5      0.65  spatial    FPN P3-P7 (5)
    RepPoints R50 (RepPoints X101-DCN)            2e-5      0.65  spatial    FPN, 5 levels
    SOLO R50 (SOLO R101)                          2e-5      0.65  spatial    FPN, 4 levels
    Faster R-CNN R50 (Cascade Mask X101-DCN)      5e-7      0.45  spatial    FPN P2-P5 (4)
    Mask R-CNN R50 (Cascade Mask X101-DCN)        5e-7      0.45  spatial    FPN P2-P5 (4)
    PSPNet / DeepLabV3 R18 (PSPNet R101), seg     2e-5      0.75  spatial    last backbone
                                                                             stage, 512->2048
    ResNet-18 (ResNet-34), ImageNet               7e-5      0.15  channel    last stage 512
    MobileNetV1 (ResNet-50), ImageNet             7e-5      0.15  channel    last stage
                                                                             1024->2048
    ============================================  ========  ====  =========  ================

    One loss instance (own align and generator) per distilled feature level.

    ``paired_inputs = ()``: the channel counts may differ (aligned here), so the
    distiller's generic shape check is skipped and :meth:`forward` checks the
    shapes itself.

    Args:
        student_channels (int): :math:`C_S`.
        teacher_channels (int): :math:`C_T`.
        alpha_mgd (float): :math:`\alpha`, the MGD loss weight (default 2e-5, the
            one-stage detector setting).
        lambda_mgd (float): :math:`\lambda`, the masking ratio in [0, 1] (default 0.65).
        mask_type (str): 'spatial' (detection, segmentation) or 'channel'
            (classification).
        loss_weight (float): :math:`w`, an extra multiplier (e.g. for schedules; >= 0).
        allow_negative_weight (bool): accept ``loss_weight < 0``.
    """

    paired_inputs = ()

    def __init__(self,
                 student_channels: int,
                 teacher_channels: int,
                 alpha_mgd: float = 2e-5,
                 lambda_mgd: float = 0.65,
                 mask_type: str = 'spatial',
                 loss_weight: float = 1.0,
                 allow_negative_weight: bool = False) -> None:
        super().__init__()
        check_loss_args(self, alpha_mgd=alpha_mgd, lambda_mgd=lambda_mgd, loss_weight=loss_weight,
                        allow_negative_weight=allow_negative_weight)
        self.connector = MGDConnector(student_channels, teacher_channels, lambda_mgd, mask_type)
        self.alpha_mgd = float(alpha_mgd)
        self.loss_weight = loss_weight

    @property
    def lambda_mgd(self) -> float:
        return self.connector.lambda_mgd

    @property
    def mask_type(self) -> str:
        return self.connector.mask_type

    def random_mask(self, preds_S: torch.Tensor) -> torch.Tensor:
        """A fresh MGD mask for ``preds_S`` (see :meth:`MGDConnector.random_mask`)."""
        return self.connector.random_mask(preds_S)

    def generator_forward(self, preds_S: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        r""":math:`G = W_{l2}(\mathrm{ReLU}(W_{l1}(f_{align}(S) \cdot M)))` for a given mask."""
        return self.connector.generate(preds_S, mask)

    def forward(self,
                preds_S: torch.Tensor,
                preds_T: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """MGD loss, already multiplied by ``alpha_mgd`` and ``loss_weight``.

        Args:
            preds_S (Tensor): student feature (N, C_S, H, W).
            preds_T (Tensor): teacher feature (N, C_T, H, W), same N, H, W.
            mask (Tensor, optional): a mask to use instead of a random one,
                broadcastable to (N, C_T, H, W); for tests and analysis.

        Returns:
            Tensor: scalar loss.
        """
        self._check_shapes(preds_S, preds_T)
        if mask is None:
            mask = self.random_mask(preds_S)
        generated = self.generator_forward(preds_S, mask)
        # at least float32: an fp16 (AMP) sum over a whole FPN level can overflow
        dtype = torch.promote_types(torch.promote_types(generated.dtype, preds_T.dtype), torch.float32)
        diff = generated.to(dtype) - preds_T.detach().to(dtype)
        loss = diff.pow(2).sum() / preds_S.shape[0]
        return loss * (self.alpha_mgd * self.loss_weight)

    def _check_shapes(self, preds_S: torch.Tensor, preds_T: torch.Tensor) -> None:
        s_shape, t_shape = tuple(preds_S.shape), tuple(preds_T.shape)
        c_s, c_t = self.connector.student_channels, self.connector.teacher_channels
        if len(s_shape) != 4 or len(t_shape) != 4:
            raise ValueError(f'MGDLoss expects NCHW features; got preds_S {s_shape} and '
                             f'preds_T {t_shape}')
        if s_shape[0] != t_shape[0] or s_shape[2:] != t_shape[2:]:
            raise ValueError(
                f'MGDLoss needs the same batch size and spatial size for student and teacher; '
                f'got preds_S {s_shape} and preds_T {t_shape}. Distill features of the same '
                'stride (or resize one of them with a connector)')
        if s_shape[1] != c_s or t_shape[1] != c_t:
            raise ValueError(
                f'MGDLoss was built with student_channels={c_s}, teacher_channels={c_t} but got '
                f'preds_S {s_shape} and preds_T {t_shape}')
