from .conv_connector import ConvConnector
from .linear_connector import LinearConnector
from .mgd_connector import MGDConnector, mgd_random_mask
from .token_map_connector import MapToTokens, Resize, TokensToMap

__all__ = ['MGDConnector', 'mgd_random_mask', 'ConvConnector', 'LinearConnector', 'TokensToMap',
           'MapToTokens', 'Resize']
# issue 6 (G2SD)
from .mlp_connector import MLPConnector  # noqa: E402

__all__ += ['MLPConnector']
# issue 9 (MST-Distill)
from .gatenet import DenseGateNet, GateNet  # noqa: E402
from .masknet import MaskNet1d, MaskNet2d  # noqa: E402

__all__ += ['MaskNet1d', 'MaskNet2d', 'GateNet', 'DenseGateNet']
