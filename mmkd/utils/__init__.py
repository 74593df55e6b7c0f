"""Set-up (register_all_modules), compat shims, safe checkpoint loading, model building."""
from .checkpoint import (
    UnsafeCheckpointError,
    allow_mmengine_checkpoint_globals,
    install_safe_url_checkpoint_loader,
    load_state_dict_file,
    load_teacher_weights,
    resolve_checkpoint_file,
    safe_torch_load,
)
from .model_builder import build_task_model, load_model_cfg
from .setup_env import register_all_modules

__all__ = ['allow_mmengine_checkpoint_globals', 'install_safe_url_checkpoint_loader',
           'build_task_model', 'load_model_cfg', 'register_all_modules', 'safe_torch_load',
           'load_state_dict_file', 'load_teacher_weights', 'resolve_checkpoint_file',
           'UnsafeCheckpointError']
