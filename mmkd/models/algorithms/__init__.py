"""BaseModel subclasses the Runner trains: one file per method (the paper's own logic)."""
from .base_algorithm import BaseAlgorithm
from .collaborative_distill import CollaborativeDistill
from .llava_kd import LlavaKDDistill
from .llava_mod import LlavaMoDDistill
from .masked_image_distill import MaskedImageDistill, MaskSpec, random_masking
from .multi_granularity_distill import MultiGranularityDistill
from .multi_teacher_distill import MultiTeacherDistill
from .single_teacher_distill import SingleTeacherDistill

__all__ = ['BaseAlgorithm', 'SingleTeacherDistill', 'MaskedImageDistill', 'MaskSpec',
           'random_masking', 'MultiTeacherDistill', 'CollaborativeDistill', 'MultiGranularityDistill',
           'LlavaKDDistill', 'LlavaMoDDistill']
