"""Model-side helpers shared by algorithms (batch-level augmentations, ...)."""
from .cutmix import BoxMaskGenerator, cutmix

__all__ = ['BoxMaskGenerator', 'cutmix']
