"""mmkd: knowledge distillation for the OpenMMLab stack.

Importing mmkd checks that the installed mmengine/mmcv are versions mmkd works with
and says what to install otherwise. Heavy imports (mmdet, transformers, ...) are
deferred to where they are used.
"""
from .utils.checkpoint import allow_mmengine_checkpoint_globals
from .utils.compat import make_moved_transformers_names_importable
from .utils.version_check import check_dependencies
from .version import __version__

check_dependencies()
# torch>=2.6 loads checkpoints with weights_only=True; allow-list the few mmengine
# types that mmengine's own checkpoints hold so that `resume=True` works, and load
# mmengine's http(s) checkpoints with mmkd's safe loader (utils/checkpoint.py).
allow_mmengine_checkpoint_globals()
# mmpretrain 1.2.0 (imported by mmdet 3.3.0) imports names that transformers 4.53+ moved
# out of transformers.modeling_utils; make them importable there again. This stays an
# import hook (not a call at the place mmkd imports mmpretrain): see the comment above
# make_moved_transformers_names_importable in utils/compat.py for why.
make_moved_transformers_names_importable()

__all__ = ['__version__']
