from .base_algorithm import BaseAlgorithm
from .distill_data_preprocessor import DistillDataPreprocessor
from .single_teacher_distill import SingleTeacherDistill

__all__ = ['BaseAlgorithm', 'SingleTeacherDistill', 'DistillDataPreprocessor']
# issue 6 (DMAE/G2SD)
from .masked_image_distill import MaskedImageDistill, MaskSpec, random_masking  # noqa: E402

__all__ += ['MaskedImageDistill', 'MaskSpec', 'random_masking']
# issue 9 (MST-Distill)
from .multi_teacher_distill import MultiTeacherDistill  # noqa: E402
from .multimodal_classifier import (  # noqa: E402
                                    ConvEncoder1d,
                                    ConvEncoder2d,
                                    ConvEncoder3d,
                                    MLPEncoder,
                                    MultiModalClassifier,
)
from .multimodal_data_preprocessor import MultiModalDataPreprocessor, MultiTeacherDataPreprocessor  # noqa: E402
from .teacher_combiners import AverageTeachers, FixedWeightTeachers, MSTRouter  # noqa: E402

__all__ += ['MultiTeacherDistill', 'MultiModalClassifier', 'ConvEncoder1d', 'ConvEncoder2d',
            'ConvEncoder3d', 'MLPEncoder', 'MultiModalDataPreprocessor', 'MultiTeacherDataPreprocessor',
            'AverageTeachers', 'FixedWeightTeachers', 'MSTRouter']
# issue 5 (HFD/BSD collaborative distillation)
from .collaborative_distill import CollaborativeDistill, CollaborativeOptimWrapperConstructor  # noqa: E402

__all__ += ['CollaborativeDistill', 'CollaborativeOptimWrapperConstructor']
# issue 4 (MGD semi-supervised segmentation)
from .multi_granularity_distill import MultiGranularityDistill, SemiSupervisedDataPreprocessor  # noqa: E402

__all__ += ['MultiGranularityDistill', 'SemiSupervisedDataPreprocessor']
# issue 8 (LLaVA-MoD)
from .llava_mod import LlavaMoDDistill  # noqa: E402

__all__ += ['LlavaMoDDistill']
# issue 8 (LLaVA-KD)
from .llava_kd import LlavaKDDistill  # noqa: E402

__all__ += ['LlavaKDDistill']
