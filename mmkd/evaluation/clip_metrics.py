"""Metrics of CLIP models: image-text retrieval recall and zero-shot classification.

Both read what ``mmkd.OpenCLIPModel`` writes in 'predict' mode: ``img_embed`` and
``text_embed`` (L2-normalised), ``pred_score`` (zero-shot class scores), and the
packed ``gt_label``, ``caption`` and ``source`` of each sample.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric

from mmkd.registry import METRICS


def _field(sample, name):
    if isinstance(sample, dict):
        return sample.get(name)
    return getattr(sample, name, None)


def _selected(sample, sources: Optional[Sequence[str]]) -> bool:
    return sources is None or _field(sample, 'source') in sources


def recall_at_k(sim: torch.Tensor, match: torch.Tensor, ks: Sequence[int]) -> Dict[int, float]:
    """Percent of rows whose ``k`` most similar columns contain a match.

    Args:
        sim (Q, G): similarity of each query to each gallery item.
        match (Q, G) bool: which gallery items are correct for each query.
    """
    order = sim.argsort(dim=1, descending=True)
    hits = match.gather(1, order)
    return {k: 100.0 * hits[:, :k].any(dim=1).float().mean().item() for k in ks}


@METRICS.register_module()
class ImageTextRetrieval(BaseMetric):
    """Recall@K of image-to-text and text-to-image retrieval over the evaluated pairs.

    Every evaluated sample contributes one image and its caption. Image ``i``
    retrieves among all captions, caption ``j`` among all images (cosine
    similarity). A retrieved item is correct when it is the query's own pair
    (``match_by='index'``) or, with ``match_by='caption'``, any item whose caption
    is the same string (generated data sets repeat captions, and two images with
    the caption "a red star" are equally right).

    Metrics: ``i2t_R@K``, ``t2i_R@K`` for each K and their mean ``mean_R@1``.

    Args:
        topk (sequence[int]): the K values.
        match_by (str): 'index' or 'caption'.
        sources (sequence[str], optional): only samples whose ``source`` is listed.
        prefix (str): metric name prefix (default 'retrieval').
    """

    default_prefix = 'retrieval'

    def __init__(self, topk: Sequence[int] = (1, 5, 10), match_by: str = 'index',
                 sources: Optional[Sequence[str]] = None, collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if match_by not in ('index', 'caption'):
            raise ValueError(f"ImageTextRetrieval.match_by={match_by!r}; valid: 'index', 'caption'")
        if not topk or any(int(k) < 1 for k in topk):
            raise ValueError(f'ImageTextRetrieval.topk={topk!r} must be positive integers')
        self.topk = tuple(int(k) for k in topk)
        self.match_by = match_by
        self.sources = tuple(sources) if sources is not None else None

    def process(self, data_batch, data_samples: Sequence) -> None:
        for sample in data_samples:
            if not _selected(sample, self.sources):
                continue
            img, text = _field(sample, 'img_embed'), _field(sample, 'text_embed')
            if img is None or text is None:
                raise KeyError('ImageTextRetrieval needs img_embed and text_embed in every '
                               'prediction: evaluate an OpenCLIPModel on data with captions')
            self.results.append(dict(img=img.float().cpu(), text=text.float().cpu(),
                                     caption=_field(sample, 'caption')))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        if not results:
            raise ValueError(f'ImageTextRetrieval: no sample to evaluate (sources={self.sources})')
        img = torch.stack([r['img'] for r in results])
        text = torch.stack([r['text'] for r in results])
        if self.match_by == 'index':
            match = torch.eye(len(results), dtype=torch.bool)
        else:
            captions = [r['caption'] for r in results]
            ids = {c: i for i, c in enumerate(dict.fromkeys(captions))}
            cid = torch.tensor([ids[c] for c in captions])
            match = cid[:, None] == cid[None, :]
        sim = img @ text.t()
        i2t = recall_at_k(sim, match, self.topk)
        t2i = recall_at_k(sim.t(), match.t(), self.topk)
        out = {}
        for k in self.topk:
            out[f'i2t_R@{k}'] = i2t[k]
            out[f't2i_R@{k}'] = t2i[k]
        if 1 in self.topk:
            out['mean_R@1'] = 0.5 * (i2t[1] + t2i[1])
        return out


@METRICS.register_module()
class ZeroShotAccuracy(BaseMetric):
    """Top-K accuracy of zero-shot classification (``pred_score`` vs ``gt_label``).

    Samples without a class (``gt_label < 0``, e.g. caption-only images) or outside
    ``sources`` are skipped.

    Args:
        topk (sequence[int]): the K values (``top1``, ``top5``, ...).
        sources (sequence[str], optional): only samples whose ``source`` is listed.
        prefix (str): metric name prefix (default 'zero_shot').
    """

    default_prefix = 'zero_shot'

    def __init__(self, topk: Sequence[int] = (1, ), sources: Optional[Sequence[str]] = None,
                 collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not topk or any(int(k) < 1 for k in topk):
            raise ValueError(f'ZeroShotAccuracy.topk={topk!r} must be positive integers')
        self.topk = tuple(int(k) for k in topk)
        self.sources = tuple(sources) if sources is not None else None

    def process(self, data_batch, data_samples: Sequence) -> None:
        for sample in data_samples:
            label = _field(sample, 'gt_label')
            if label is None or not _selected(sample, self.sources):
                continue
            label = int(torch.as_tensor(label).reshape(-1)[0])
            if label < 0:
                continue
            score = _field(sample, 'pred_score')
            if score is None:
                raise KeyError('ZeroShotAccuracy needs pred_score: build the OpenCLIPModel with '
                               'zero_shot=dict(classes=..., templates=...) and a tokenizer')
            self.results.append(dict(score=score.float().cpu(), label=label))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        if not results:
            raise ValueError(f'ZeroShotAccuracy: no labelled sample to evaluate (sources={self.sources})')
        scores = torch.stack([r['score'] for r in results])
        labels = torch.tensor([r['label'] for r in results])
        out = {}
        for k in self.topk:
            top = scores.topk(min(k, scores.shape[1]), dim=1).indices
            out[f'top{k}'] = 100.0 * (top == labels[:, None]).any(dim=1).float().mean().item()
        return out
