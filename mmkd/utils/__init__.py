from .checkpoint import UnsafeCheckpointError, load_state_dict_file, load_teacher_weights, safe_torch_load
from .compat import allow_mmengine_checkpoint_globals
from .model_builder import build_task_model, load_model_cfg
from .setup_env import register_all_modules

__all__ = ['allow_mmengine_checkpoint_globals', 'build_task_model', 'load_model_cfg',
           'register_all_modules', 'safe_torch_load', 'load_state_dict_file',
           'load_teacher_weights', 'UnsafeCheckpointError']
