"""Metrics the task packages lack: CLIP retrieval / zero-shot accuracy, VQA accuracy."""
from .clip_metrics import ImageTextRetrieval, ZeroShotAccuracy
from .vqa_metric import VQAAccuracy

__all__ = ['ImageTextRetrieval', 'ZeroShotAccuracy', 'VQAAccuracy']
