"""mmkd: knowledge distillation for the OpenMMLab stack.

Importing mmkd checks that the installed mmengine/mmcv are versions mmkd works with
and says what to install otherwise. Heavy imports (mmdet, transformers, ...) are
deferred to where they are used.
"""
from .utils.compat import allow_mmengine_checkpoint_globals
from .utils.version_check import check_dependencies
from .version import __version__

check_dependencies()
# torch>=2.6 loads checkpoints with weights_only=True; allow-list the few mmengine
# types that mmengine's own checkpoints hold so that `resume=True` works.
allow_mmengine_checkpoint_globals()

__all__ = ['__version__']
