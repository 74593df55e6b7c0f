from .conv_connector import ConvConnector
from .linear_connector import LinearConnector
from .token_map_connector import MapToTokens, Resize, TokensToMap

__all__ = ['ConvConnector', 'LinearConnector', 'TokensToMap', 'MapToTokens', 'Resize']
# issue 6 (G2SD)
from .mlp_connector import MLPConnector  # noqa: E402

__all__ += ['MLPConnector']
