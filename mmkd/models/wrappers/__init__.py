"""mmengine model wrappers (MODEL_WRAPPERS): DDP with several optimizers, FSDP for LLMs."""
from .fsdp import LLMFullyShardedDataParallel, layer_names_wrap_policy
from .multi_optimizer_ddp import MultiOptimizerDataParallel

__all__ = ['MultiOptimizerDataParallel', 'LLMFullyShardedDataParallel', 'layer_names_wrap_policy']
