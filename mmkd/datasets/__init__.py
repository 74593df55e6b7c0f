from .cached_teacher import CachedTeacherDataset, data_fingerprint, replay_rng, teacher_fingerprint
from .digits import UNLABELLED, DigitsDataset
from .shapes import (
                             SHAPES_CLASSES,
                             SHAPES_PALETTE,
                             SHAPES_SEG_CLASSES,
                             SHAPES_SEG_PALETTE,
                             ensure_shapes,
                             generate_shapes,
)

__all__ = ['CachedTeacherDataset', 'data_fingerprint', 'teacher_fingerprint', 'replay_rng',
           'DigitsDataset', 'UNLABELLED', 'generate_shapes', 'ensure_shapes', 'SHAPES_CLASSES',
           'SHAPES_PALETTE', 'SHAPES_SEG_CLASSES', 'SHAPES_SEG_PALETTE']
# issue 9 (MST-Distill)
from .cross_modal_digits import (  # noqa: E402
                     CrossModalDigitsDataset,
                     MultiModalArrayDataset,
                     PackMultiModalInputs,
                     audio_signal,
)

__all__ += ['CrossModalDigitsDataset', 'MultiModalArrayDataset', 'PackMultiModalInputs',
            'audio_signal']
# issue 7 (TinyCLIP)
from .image_captions import (  # noqa: E402
                     CsvCaptionDataset,
                     DigitsShapesCaptions,
                     PackImageText,
                     TokenizeCaption,
)

__all__ += ['DigitsShapesCaptions', 'CsvCaptionDataset', 'TokenizeCaption', 'PackImageText']
# issue 8 (LLaVA-KD)
from .shapes_vqa import (  # noqa: E402
                         ChatWordTokenizer,
                         PackVQAInputs,
                         ShapesVQADataset,
                         build_chat_tokenizer,
                         build_conversation,
)

__all__ += ['ShapesVQADataset', 'PackVQAInputs', 'ChatWordTokenizer', 'build_chat_tokenizer',
            'build_conversation']
# issue 4 (MGD semi-supervised segmentation)
from .semi_supervised import SemiSupervisedSegDataset  # noqa: E402

__all__ += ['SemiSupervisedSegDataset']
# issue 8 (LLaVA-MoD): LLaVA-format json conversations and RLAIF-V preference pairs
from .llava_json import LlavaJsonDataset  # noqa: E402

__all__ += ['LlavaJsonDataset']
