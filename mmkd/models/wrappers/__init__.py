# issue 7 (TinyCLIP): open_clip models as mmengine BaseModels
from .image_text_data_preprocessor import ImageTextDataPreprocessor  # noqa: E402
from .open_clip_wrapper import OpenCLIPModel  # noqa: E402

__all__ = ['OpenCLIPModel', 'ImageTextDataPreprocessor']
# issue 8 (LLaVA-KD): transformers LLaVA models as mmengine BaseModels
from .llava import LlavaModel, causal_lm_loss, check_same_vocabulary, next_token_targets  # noqa: E402
from .llava_data_preprocessor import LlavaDataPreprocessor  # noqa: E402

__all__ += ['LlavaModel', 'LlavaDataPreprocessor', 'causal_lm_loss', 'next_token_targets',
            'check_same_vocabulary']
# issue 5/11: several optimizers in one step under torch.distributed
from .multi_optimizer_ddp import MultiOptimizerDataParallel  # noqa: E402

__all__ += ['MultiOptimizerDataParallel']
# issue 18: teachers from transformers and open_clip for vision (or text) students
from .hf_vision import HFVisionModel  # noqa: E402
from .open_clip_towers import OpenCLIPImageEncoder, OpenCLIPTextEncoder  # noqa: E402

__all__ += ['HFVisionModel', 'OpenCLIPImageEncoder', 'OpenCLIPTextEncoder']
