"""Models that are not OpenMMLab's own, as mmengine BaseModels (loss/predict/tensor modes)."""
from .hf_vision import HFVisionModel
from .llava import LlavaModel, causal_lm_loss, check_same_vocabulary, next_token_targets
from .llava_parts import LlavaParts
from .multimodal_classifier import (
           ConvEncoder1d,
           ConvEncoder2d,
           ConvEncoder3d,
           MLPEncoder,
           MultiModalClassifier,
)
from .open_clip_model import OpenCLIPModel
from .open_clip_towers import OpenCLIPImageEncoder, OpenCLIPTextEncoder

__all__ = ['HFVisionModel', 'LlavaModel', 'LlavaParts', 'causal_lm_loss', 'check_same_vocabulary',
           'next_token_targets', 'MultiModalClassifier', 'ConvEncoder1d', 'ConvEncoder2d',
           'ConvEncoder3d', 'MLPEncoder', 'OpenCLIPModel', 'OpenCLIPImageEncoder',
           'OpenCLIPTextEncoder']
