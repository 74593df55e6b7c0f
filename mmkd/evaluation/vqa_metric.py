"""Exact-match answer accuracy of visual question answering (generated answers)."""
from __future__ import annotations

import re
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

from mmengine.evaluator import BaseMetric

from mmkd.registry import METRICS

_SPACES = re.compile(r'\s+')
_EDGE_PUNCT = re.compile(r'^[\s.,!?;:]+|[\s.,!?;:]+$')


def normalize_answer(text: str) -> str:
    """Lower-case, drop leading/trailing punctuation, collapse white space."""
    return _SPACES.sub(' ', _EDGE_PUNCT.sub('', str(text).lower())).strip()


def _field(sample, name):
    if isinstance(sample, dict):
        return sample.get(name)
    return getattr(sample, name, None)


@METRICS.register_module()
class VQAAccuracy(BaseMetric):
    """Percent of questions whose generated answer equals the ground truth.

    Reads ``pred_text`` (written by ``LlavaModel`` in 'predict' mode) and
    ``gt_answer`` (packed by ``PackVQAInputs``), both normalised by
    :func:`normalize_answer`. Metrics: ``accuracy`` over all questions and, when the
    samples carry ``question_type``, ``acc_<type>`` per type.

    Args:
        per_type (bool): also report the accuracy of each question type.
        prefix (str): metric name prefix (default 'vqa').
    """

    default_prefix = 'vqa'

    def __init__(self, per_type: bool = True, collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.per_type = per_type

    def process(self, data_batch, data_samples: Sequence) -> None:
        for sample in data_samples:
            pred, gt = _field(sample, 'pred_text'), _field(sample, 'gt_answer')
            if pred is None or gt is None:
                raise KeyError('VQAAccuracy needs pred_text and gt_answer in every prediction: '
                               'evaluate a LlavaModel on data packed by PackVQAInputs')
            self.results.append(dict(correct=normalize_answer(pred) == normalize_answer(gt),
                                     type=_field(sample, 'question_type') or ''))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        if not results:
            raise ValueError('VQAAccuracy: no predictions to evaluate')
        metrics = {'accuracy': 100.0 * sum(r['correct'] for r in results) / len(results)}
        if self.per_type:
            groups = defaultdict(list)
            for r in results:
                if r['type']:
                    groups[r['type']].append(r['correct'])
            for kind in sorted(groups):
                metrics[f'acc_{kind}'] = 100.0 * sum(groups[kind]) / len(groups[kind])
        return metrics
