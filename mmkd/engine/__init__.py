from .atomic_backend import AtomicLocalBackend, atomic_write
from .cpu_amp_optim_wrapper import CPUAmpOptimWrapper
from .hooks import *  # noqa: F401,F403

__all__ = ['AtomicLocalBackend', 'atomic_write', 'CPUAmpOptimWrapper']
# issue 6 (layer-wise lr decay for ViT students)
from .optimizers import DistillLayerDecayOptimWrapperConstructor  # noqa: E402

__all__ += ['DistillLayerDecayOptimWrapperConstructor']
