from .atomic_backend import AtomicLocalBackend, atomic_torch_save, atomic_write, remove_stale_parts
from .cpu_amp_optim_wrapper import CPUAmpOptimWrapper
from .hooks import *  # noqa: F401,F403

__all__ = ['AtomicLocalBackend', 'atomic_write', 'atomic_torch_save', 'remove_stale_parts',
           'CPUAmpOptimWrapper']
# issue 6 (layer-wise lr decay for ViT students)
from .optimizers import DistillLayerDecayOptimWrapperConstructor  # noqa: E402

__all__ += ['DistillLayerDecayOptimWrapperConstructor']
