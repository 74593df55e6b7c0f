"""Metrics the task packages lack (filled by later methods, e.g. CLIP retrieval)."""
# issue 7 (TinyCLIP)
from .clip_metrics import ImageTextRetrieval, ZeroShotAccuracy  # noqa: E402

__all__ = ['ImageTextRetrieval', 'ZeroShotAccuracy']
