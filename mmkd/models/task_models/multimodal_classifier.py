"""A small late/intermediate-fusion classifier over several modalities.

Used as the multimodal and cross-modal teachers of MST-Distill's demos and
real-scale configs (no OpenMMLab task package has a multimodal classifier). It is an
ordinary mmengine ``BaseModel``: ``tools/train.py`` trains it and mmpretrain's
``Accuracy`` metric evaluates it (``predict`` returns mmpretrain ``DataSample`` s).

Structure (layer names are what MaskNets hook into)::

    encoders.<modality>  -> (N, D_m) per modality
    fusion               -> identity on the concatenation (N, sum D_m)
    fc1 -> act -> dropout -> fc2 (logits)
"""
from __future__ import annotations

from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import nn

from mmkd.registry import MODELS

from ..preprocessors.multimodal_data_preprocessor import build_data_preprocessor, build_mmkd


@MODELS.register_module()
class ConvEncoder2d(nn.Module):
    """Three 3x3 conv-BN-ReLU blocks (two 2x2 max-pools), global average pool, linear.

    Args:
        in_channels (int): input channels.
        width (int): channels of the first block (doubled twice).
        out_dim (int): output feature size.
    """

    def __init__(self, in_channels: int = 3, width: int = 16, out_dim: int = 64) -> None:
        super().__init__()
        chans = [in_channels, width, 2 * width, 4 * width]
        layers: List[nn.Module] = []
        for i in range(3):
            layers += [nn.Conv2d(chans[i], chans[i + 1], 3, padding=1, bias=False),
                       nn.BatchNorm2d(chans[i + 1]), nn.ReLU(inplace=True)]
            if i < 2:
                layers.append(nn.MaxPool2d(2))
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.proj = nn.Sequential(nn.Linear(chans[-1], out_dim), nn.ReLU(inplace=True))
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.body(x))


@MODELS.register_module()
class ConvEncoder1d(nn.Module):
    """Three 1-D conv-BN-ReLU blocks (kernels 7, 5, 3; two max-pools), global average
    pool, linear: an encoder for (N, C, L) signals.

    Args:
        in_channels (int): signal channels.
        width (int): channels of the first block (doubled twice).
        out_dim (int): output feature size.
    """

    def __init__(self, in_channels: int = 1, width: int = 16, out_dim: int = 64) -> None:
        super().__init__()
        chans = [in_channels, width, 2 * width, 4 * width]
        layers: List[nn.Module] = []
        for i, kernel in enumerate((7, 5, 3)):
            layers += [nn.Conv1d(chans[i], chans[i + 1], kernel, padding=kernel // 2, bias=False),
                       nn.BatchNorm1d(chans[i + 1]), nn.ReLU(inplace=True)]
            if i < 2:
                layers.append(nn.MaxPool1d(2))
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool1d(1), nn.Flatten())
        self.proj = nn.Sequential(nn.Linear(chans[-1], out_dim), nn.ReLU(inplace=True))
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.body(x))


@MODELS.register_module()
class ConvEncoder3d(nn.Module):
    """Three 3x3x3 conv-BN-ReLU blocks (two 2x2x2 max-pools), global average pool,
    linear: an encoder for (N, C, T, H, W) clips or feature volumes.

    Args:
        in_channels (int): input channels.
        width (int): channels of the first block (doubled twice).
        out_dim (int): output feature size.
    """

    def __init__(self, in_channels: int = 3, width: int = 8, out_dim: int = 64) -> None:
        super().__init__()
        chans = [in_channels, width, 2 * width, 4 * width]
        layers: List[nn.Module] = []
        for i in range(3):
            layers += [nn.Conv3d(chans[i], chans[i + 1], 3, padding=1, bias=False),
                       nn.BatchNorm3d(chans[i + 1]), nn.ReLU(inplace=True)]
            if i < 2:
                layers.append(nn.MaxPool3d(2, ceil_mode=True))
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool3d(1), nn.Flatten())
        self.proj = nn.Sequential(nn.Linear(chans[-1], out_dim), nn.ReLU(inplace=True))
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.body(x))


@MODELS.register_module()
class MLPEncoder(nn.Module):
    """Flatten, then ``Linear -> ReLU`` layers: an encoder for feature vectors
    (e.g. pre-extracted CrisisMMD or VGGSound features).

    Args:
        in_dim (int): flattened input size.
        hidden_dims (list[int]): sizes of the hidden layers; the last is the output.
        dropout (float): dropout after each layer.
    """

    def __init__(self, in_dim: int, hidden_dims=(512, 256), dropout: float = 0.0) -> None:
        super().__init__()
        layers: List[nn.Module] = [nn.Flatten()]
        prev = in_dim
        for dim in hidden_dims:
            layers += [nn.Linear(prev, dim), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            prev = dim
        self.body = nn.Sequential(*layers)
        self.out_dim = prev

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@MODELS.register_module()
class MultiModalClassifier(BaseModel):
    """Classify from one or several modalities by concatenating their encodings.

    Args:
        encoders (dict): modality key -> encoder config (``ConvEncoder2d``,
            ``ConvEncoder1d``, ``ConvEncoder3d``, ``MLPEncoder`` or any module with
            an ``out_dim``).
            One key makes a unimodal (e.g. cross-modal teacher) classifier.
        num_classes (int): number of classes.
        hidden_dim (int): width of ``fc1``.
        dropout (float): dropout before ``fc2``.
        data_preprocessor (dict, optional): usually ``MultiModalDataPreprocessor``.
        init_cfg (dict, optional): mmengine init config.

    ``forward(inputs, data_samples, mode)``: ``inputs`` is a dict modality -> batch
    tensor; ``mode='tensor'`` returns logits, ``'loss'`` ``{'loss_cls': CE}``
    (labels -100 ignored), ``'predict'`` mmpretrain ``DataSample`` s with
    ``pred_score``/``pred_label``.
    """

    def __init__(self,
                 encoders: Dict[str, dict],
                 num_classes: int,
                 hidden_dim: int = 64,
                 dropout: float = 0.0,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if data_preprocessor is not None and isinstance(data_preprocessor, dict):
            data_preprocessor = build_data_preprocessor(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if not isinstance(encoders, dict) or not encoders:
            raise TypeError('MultiModalClassifier.encoders must be a non-empty dict '
                            f'(modality -> encoder config), got {encoders!r}')
        self.encoders = nn.ModuleDict()
        for key, cfg in encoders.items():
            encoder = cfg if isinstance(cfg, nn.Module) else build_mmkd(cfg)
            if not hasattr(encoder, 'out_dim'):
                raise TypeError(f'encoders.{key}: {type(encoder).__name__} has no `out_dim`')
            self.encoders[key] = encoder
        fused = sum(enc.out_dim for enc in self.encoders.values())
        self.fusion = nn.Identity()
        self.fc1 = nn.Linear(fused, hidden_dim)
        # Not in place: a MaskNet hook may replace fc1's output.
        self.act = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden_dim, num_classes)
        self.num_classes = num_classes

    def extract_feat(self, inputs: Dict[str, torch.Tensor]) -> torch.Tensor:
        if not isinstance(inputs, dict):
            raise TypeError('MultiModalClassifier takes a dict of modalities, got '
                            f'{type(inputs).__name__}')
        missing = [k for k in self.encoders if k not in inputs]
        if missing:
            raise KeyError(f'MultiModalClassifier: inputs lack modalities {missing}; they '
                           f'have {sorted(inputs)}')
        feats = [encoder(inputs[key]) for key, encoder in self.encoders.items()]
        return self.fusion(torch.cat(feats, dim=1))

    def forward(self, inputs, data_samples=None, mode: str = 'tensor'):
        logits = self.fc2(self.dropout(self.act(self.fc1(self.extract_feat(inputs)))))
        if mode == 'tensor':
            return logits
        if mode == 'loss':
            labels = gt_labels(data_samples, logits.device)
            return {'loss_cls': safe_cross_entropy(logits, labels)}
        if mode == 'predict':
            return self._predict(logits, data_samples)
        raise ValueError(f"mode={mode!r} is not valid; choose 'loss', 'predict' or 'tensor'")

    def _predict(self, logits: torch.Tensor, data_samples=None):
        from mmpretrain.structures import DataSample
        scores = F.softmax(logits, dim=1).detach()
        labels = scores.argmax(dim=1)
        if data_samples is None:
            data_samples = [DataSample() for _ in range(logits.shape[0])]
        for sample, score, label in zip(data_samples, scores, labels):
            sample.set_pred_score(score).set_pred_label(label)
        return data_samples


def gt_labels(data_samples, device) -> torch.Tensor:
    """(N,) long tensor of the samples' ``gt_label`` (unlabelled samples carry -100)."""
    if not data_samples:
        raise ValueError('labels are needed but the batch has no data samples')
    labels = []
    for sample in data_samples:
        label = getattr(sample, 'gt_label', None)
        if label is None:
            raise ValueError(f'a data sample has no gt_label; it has {sorted(sample.keys())}')
        labels.append(torch.as_tensor(label).reshape(-1)[:1])
    return torch.cat(labels).long().to(device)


def safe_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over labelled samples (label >= 0); 0 (with a graph) if none is."""
    valid = labels >= 0
    if not bool(valid.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[valid], labels[valid])
