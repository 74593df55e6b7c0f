"""Embedded demo data sets, their generators and transforms; CachedTeacherDataset."""
from .cached_teacher import CachedTeacherDataset, data_fingerprint, replay_rng, teacher_fingerprint
from .cross_modal_digits import (
    CrossModalDigitsDataset,
    MultiModalArrayDataset,
    PackMultiModalInputs,
    audio_signal,
)
from .digits import UNLABELLED, DigitsDataset
from .image_captions import CsvCaptionDataset, DigitsShapesCaptions, PackImageText, TokenizeCaption
from .llava_json import LlavaJsonDataset
from .semi_supervised import SemiSupervisedSegDataset
from .shapes import (
    SHAPES_CLASSES,
    SHAPES_PALETTE,
    SHAPES_SEG_CLASSES,
    SHAPES_SEG_PALETTE,
    ensure_shapes,
    generate_shapes,
)
from .shapes_vqa import PackVQAInputs, ShapesVQADataset, build_conversation

__all__ = ['CachedTeacherDataset', 'data_fingerprint', 'teacher_fingerprint', 'replay_rng',
           'DigitsDataset', 'UNLABELLED', 'generate_shapes', 'ensure_shapes', 'SHAPES_CLASSES',
           'SHAPES_PALETTE', 'SHAPES_SEG_CLASSES', 'SHAPES_SEG_PALETTE', 'CrossModalDigitsDataset',
           'MultiModalArrayDataset', 'PackMultiModalInputs', 'audio_signal', 'DigitsShapesCaptions',
           'CsvCaptionDataset', 'TokenizeCaption', 'PackImageText', 'ShapesVQADataset',
           'PackVQAInputs', 'build_conversation', 'SemiSupervisedSegDataset', 'LlavaJsonDataset']
