# issue 7 (TinyCLIP): open_clip models as mmengine BaseModels
from .image_text_data_preprocessor import ImageTextDataPreprocessor  # noqa: E402
from .open_clip_wrapper import OpenCLIPModel  # noqa: E402

__all__ = ['OpenCLIPModel', 'ImageTextDataPreprocessor']
