from .atomic_backend import AtomicLocalBackend, atomic_write
from .cpu_amp_optim_wrapper import CPUAmpOptimWrapper
from .hooks import *  # noqa: F401,F403

__all__ = ['AtomicLocalBackend', 'atomic_write', 'CPUAmpOptimWrapper']
