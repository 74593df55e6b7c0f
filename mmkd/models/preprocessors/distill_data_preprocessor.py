"""A data preprocessor that prepares one batch for both the student and the teacher."""
from __future__ import annotations

from typing import Optional, Union

from mmengine.model import BaseDataPreprocessor
from torch import nn

from mmkd.registry import MODELS


@MODELS.register_module()
class DistillDataPreprocessor(BaseDataPreprocessor):
    """Run the student's and the teacher's preprocessors on the same raw batch.

    Used when the teacher was trained with another normalisation (e.g. a timm or
    CLIP teacher with different mean/std, or BGR vs RGB). In training it returns the
    student's ``inputs``/``data_samples`` plus ``teacher_inputs``; in evaluation only
    the student's. The teacher's preprocessor must not hold random batch
    augmentations (mixup/cutmix), or teacher and student would see different images.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module) -> None:
        super().__init__()
        self.student = student
        self.teacher = teacher

    def forward(self, data: dict, training: bool = False) -> Union[dict, list]:
        if not training:
            return self.student(data, training)
        # Teacher first, student last: preprocessors such as mmdet's write batch
        # metainfo (pad shapes) into the shared data samples; the student's must win.
        teacher_data = self.teacher(dict(data), True)
        student_data = self.student(data, True)
        student_data['teacher_inputs'] = teacher_data['inputs']
        return student_data


def build_preprocessor(cfg: Optional[Union[dict, nn.Module]], key: str,
                       scope: Optional[str] = None) -> Optional[nn.Module]:
    """Build a data preprocessor from a config (in ``scope``) or return the module."""
    if cfg is None or isinstance(cfg, nn.Module):
        return cfg
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise TypeError(f"{key} must be a dict with 'type', got {cfg!r}")
    from mmkd.utils.model_builder import build_in_scope
    return build_in_scope(cfg, scope)
