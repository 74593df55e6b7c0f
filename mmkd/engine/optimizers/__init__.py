"""Optimizer-wrapper constructors (OPTIM_WRAPPER_CONSTRUCTORS)."""
from .collaborative_constructor import CollaborativeOptimWrapperConstructor
from .layer_decay_constructor import DistillLayerDecayOptimWrapperConstructor

__all__ = ['CollaborativeOptimWrapperConstructor', 'DistillLayerDecayOptimWrapperConstructor']
