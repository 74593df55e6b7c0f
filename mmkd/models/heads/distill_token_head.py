"""A DeiT head that can be trained: class token for labels, distillation token for KD."""
from __future__ import annotations

from typing import List, Tuple

import torch
from mmpretrain.models.heads import DeiTClsHead

from mmkd.registry import MODELS

_INFERENCE = ('mean', 'cls')


@MODELS.register_module()
class DistillTokenClsHead(DeiTClsHead):
    """Classification head of a distilled ViT (``DistilledVisionTransformer``).

    mmpretrain's :class:`DeiTClsHead` only supports inference (its training forward
    warns that DeiT cannot be trained). This subclass trains DeiT-style (Touvron et
    al., ICML 2021; G2SD's specific stage, Huang et al., CVPR 2023):

    * ``loss``: the task loss (``loss`` config, e.g. cross-entropy with
      ``loss_weight=0.5``) on the **class-token** logits only. The
      distillation-token logits are computed too (``layers.head_dist``) so that a
      distiller can record them (``ModuleOutputs`` with source
      ``'head.layers.head_dist'``) and supervise them with the teacher
      (``HardDistillationLoss`` or ``KLDivergence``).
    * ``predict``: the mean of both heads' logits (``inference='mean'``, DeiT and
      G2SD) or the class token's alone (``inference='cls'``).

    The parameters are exactly :class:`DeiTClsHead`'s (``layers.head``,
    ``layers.head_dist``, optional ``layers.pre_logits``), so a trained student's
    weights load unchanged (``strict=True``) into a plain mmpretrain
    ``DeiTClsHead``.

    Args:
        inference (str): 'mean' (default) or 'cls'.
        **kwargs: :class:`DeiTClsHead` arguments (num_classes, in_channels, loss, ...).
    """

    def __init__(self, *args, inference: str = 'mean', **kwargs) -> None:
        if inference not in _INFERENCE:
            raise ValueError(f'DistillTokenClsHead inference={inference!r}; valid: {_INFERENCE}')
        super().__init__(*args, **kwargs)
        self.inference = inference

    def _both_logits(self, feats: Tuple[List[torch.Tensor]]) -> Tuple[torch.Tensor, torch.Tensor]:
        feat = feats[-1]
        if not isinstance(feat, (tuple, list)) or len(feat) not in (2, 3):
            raise TypeError(
                'DistillTokenClsHead needs (cls_token, dist_token) features: use '
                "DistilledVisionTransformer with out_type='cls_token' as the backbone")
        cls_token, dist_token = self.pre_logits(feats)
        return self.layers.head(cls_token), self.layers.head_dist(dist_token)

    def forward(self, feats: Tuple[List[torch.Tensor]]) -> torch.Tensor:
        cls_score, dist_score = self._both_logits(feats)
        if self.inference == 'cls':
            return cls_score
        return (cls_score + dist_score) / 2

    def loss(self, feats: Tuple[torch.Tensor], data_samples, **kwargs) -> dict:
        cls_score, _ = self._both_logits(feats)  # dist logits: recorded by the distiller
        return self._get_loss(cls_score, data_samples, **kwargs)
