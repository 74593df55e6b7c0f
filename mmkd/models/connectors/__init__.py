"""Learnable or functional adapters between student and teacher tensors."""
from .conv_connector import ConvConnector
from .linear_connector import LinearConnector
from .masknet import MaskNet1d, MaskNet2d
from .mgd_connector import MGDConnector, mgd_random_mask
from .mlp_connector import MLPConnector
from .token_map_connector import MapToTokens, Resize, TokensToMap

__all__ = ['ConvConnector', 'LinearConnector', 'MLPConnector', 'MGDConnector', 'mgd_random_mask',
           'TokensToMap', 'MapToTokens', 'Resize', 'MaskNet1d', 'MaskNet2d']
