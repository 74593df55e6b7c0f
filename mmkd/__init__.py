"""mmkd: knowledge distillation for the OpenMMLab stack.

Importing mmkd checks that the installed mmengine/mmcv are versions mmkd works with
and says what to install otherwise. Heavy imports (mmdet, transformers, ...) are
deferred to where they are used.
"""
from .utils.compat import allow_mmengine_checkpoint_globals, make_moved_transformers_names_importable
from .utils.version_check import check_dependencies
from .version import __version__

check_dependencies()
# torch>=2.6 loads checkpoints with weights_only=True; allow-list the few mmengine
# types that mmengine's own checkpoints hold so that `resume=True` works.
allow_mmengine_checkpoint_globals()
# mmpretrain 1.2.0 (imported by mmdet 3.3.0) imports names that transformers 4.53+ moved
# out of transformers.modeling_utils; make them importable there again (utils/compat.py).
make_moved_transformers_names_importable()

__all__ = ['__version__']
