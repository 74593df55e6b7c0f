"""Model-side helpers shared by algorithms (batch-level augmentations, ...)."""
from .cutmix import BoxMaskGenerator, cutmix
from .init_from_teacher import (
    InitFromTeacherReport,
    check_init_from_teacher,
    init_student_from_teacher,
    parse_init_from_teacher,
)

__all__ = ['BoxMaskGenerator', 'cutmix', 'InitFromTeacherReport', 'check_init_from_teacher',
           'init_student_from_teacher', 'parse_init_from_teacher']
