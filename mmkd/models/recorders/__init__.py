from .base_recorder import BaseRecorder
from .method_outputs import FunctionOutputs, MethodOutputs
from .module_inputs import ModuleInputs
from .module_outputs import ModuleOutputs, find_module
from .recorder_manager import EarlyExit, RecorderManager

__all__ = ['BaseRecorder', 'ModuleOutputs', 'ModuleInputs', 'MethodOutputs',
           'FunctionOutputs', 'RecorderManager', 'EarlyExit', 'find_module']
