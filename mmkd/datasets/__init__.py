from .digits import UNLABELLED, DigitsDataset

__all__ = ['DigitsDataset', 'UNLABELLED']
