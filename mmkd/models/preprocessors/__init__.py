"""Data preprocessors: teacher/student pairs, image-text, LLaVA, multimodal, semi-supervised."""
from .distill_data_preprocessor import DistillDataPreprocessor
from .image_text_data_preprocessor import ImageTextDataPreprocessor
from .llava_data_preprocessor import LlavaDataPreprocessor
from .multimodal_data_preprocessor import MultiModalDataPreprocessor, MultiTeacherDataPreprocessor
from .semi_supervised_data_preprocessor import SemiSupervisedDataPreprocessor

__all__ = ['DistillDataPreprocessor', 'ImageTextDataPreprocessor', 'LlavaDataPreprocessor',
           'MultiModalDataPreprocessor', 'MultiTeacherDataPreprocessor',
           'SemiSupervisedDataPreprocessor']
