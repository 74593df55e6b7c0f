"""Data preprocessor of image-text batches (packed by ``mmkd.PackImageText``)."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from mmengine.model import BaseDataPreprocessor

from mmkd.registry import MODELS

#: OpenAI CLIP's RGB normalisation, on 0..255 pixels.
CLIP_MEAN = (0.48145466 * 255, 0.4578275 * 255, 0.40821073 * 255)
CLIP_STD = (0.26862954 * 255, 0.26130258 * 255, 0.27577711 * 255)


@MODELS.register_module()
class ImageTextDataPreprocessor(BaseDataPreprocessor):
    """Stack, move and normalise ``inputs = {'img': [...], 'text': [...]}``.

    Images (uint8 CxHxW, equal sizes) become ``(x - mean) / std`` float tensors
    (N, C, H, W), optionally with the channel order flipped first; token ids
    (LongTensor L) are stacked to (N, L). Either key may be missing (an image-only
    zero-shot set has no text). Output: ``inputs = {'img': ..., 'text': ...}``.

    Args:
        mean (sequence[float]): per-channel mean, on the 0..255 scale.
        std (sequence[float]): per-channel std, on the 0..255 scale.
        bgr_to_rgb (bool): flip BGR images (mmcv's ``LoadImageFromFile``) to RGB.
        non_blocking (bool): asynchronous host-to-device copies.
    """

    def __init__(self, mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD,
                 bgr_to_rgb: bool = False, non_blocking: bool = False) -> None:
        super().__init__(non_blocking=non_blocking)
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise ValueError(f'ImageTextDataPreprocessor: mean {mean} and std {std} need one '
                             'positive std per mean')
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1), False)
        self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(-1, 1, 1), False)
        self.bgr_to_rgb = bgr_to_rgb

    @staticmethod
    def _stack(value) -> torch.Tensor:
        return value if torch.is_tensor(value) else torch.stack(list(value))

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        inputs = data['inputs']
        if not isinstance(inputs, dict):
            raise TypeError('ImageTextDataPreprocessor expects inputs = dict(img=..., text=...) '
                            "(pack the data with dict(type='mmkd.PackImageText')), got "
                            f'{type(inputs).__name__}')
        unknown = set(inputs) - {'img', 'text'}
        if unknown:
            raise KeyError(f'ImageTextDataPreprocessor: unknown input keys {sorted(unknown)}; '
                           "valid: 'img', 'text'")
        out = {}
        if 'img' in inputs:
            img = self._stack(inputs['img']).float()
            if self.bgr_to_rgb:
                img = img.flip(1)
            out['img'] = (img - self.mean) / self.std
        if 'text' in inputs:
            out['text'] = self._stack(inputs['text']).long()
        return dict(inputs=out, data_samples=data.get('data_samples'))


def build_image_text_preprocessor(cfg: Optional[dict]) -> BaseDataPreprocessor:
    """Build from a config (default: :class:`ImageTextDataPreprocessor` with CLIP's stats)."""
    if cfg is None:
        return ImageTextDataPreprocessor()
    if isinstance(cfg, BaseDataPreprocessor):
        return cfg
    cfg = dict(cfg)
    cfg.setdefault('type', ImageTextDataPreprocessor)
    return MODELS.build(cfg)
