"""Engine: hooks, optimizer wrappers and constructors, the atomic checkpoint backend."""
from .atomic_backend import AtomicLocalBackend, atomic_torch_save, atomic_write, remove_stale_parts
from .cpu_amp_optim_wrapper import CPUAmpOptimWrapper
from .hooks import *  # noqa: F401,F403
from .optimizers import CollaborativeOptimWrapperConstructor, DistillLayerDecayOptimWrapperConstructor

__all__ = ['AtomicLocalBackend', 'atomic_write', 'atomic_torch_save', 'remove_stale_parts',
           'CPUAmpOptimWrapper', 'CollaborativeOptimWrapperConstructor',
           'DistillLayerDecayOptimWrapperConstructor']
