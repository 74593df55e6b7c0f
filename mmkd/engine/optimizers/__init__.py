from .layer_decay_constructor import DistillLayerDecayOptimWrapperConstructor

__all__ = ['DistillLayerDecayOptimWrapperConstructor']
