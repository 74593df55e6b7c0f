"""Metrics the task packages lack (filled by later methods, e.g. CLIP retrieval)."""
# issue 7 (TinyCLIP)
from .clip_metrics import ImageTextRetrieval, ZeroShotAccuracy  # noqa: E402

__all__ = ['ImageTextRetrieval', 'ZeroShotAccuracy']
# issue 8 (LLaVA-KD)
from .vqa_metric import VQAAccuracy  # noqa: E402

__all__ += ['VQAAccuracy']
