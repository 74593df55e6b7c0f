from .base_algorithm import BaseAlgorithm
from .distill_data_preprocessor import DistillDataPreprocessor
from .single_teacher_distill import SingleTeacherDistill

__all__ = ['BaseAlgorithm', 'SingleTeacherDistill', 'DistillDataPreprocessor']
