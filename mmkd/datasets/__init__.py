from .digits import UNLABELLED, DigitsDataset
from .shapes import (
                     SHAPES_CLASSES,
                     SHAPES_PALETTE,
                     SHAPES_SEG_CLASSES,
                     SHAPES_SEG_PALETTE,
                     ensure_shapes,
                     generate_shapes,
)

__all__ = ['DigitsDataset', 'UNLABELLED', 'generate_shapes', 'ensure_shapes', 'SHAPES_CLASSES',
           'SHAPES_PALETTE', 'SHAPES_SEG_CLASSES', 'SHAPES_SEG_PALETTE']
