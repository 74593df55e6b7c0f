from .cwd import ChannelWiseDivergence
from .dkd_loss import DKDLoss
from .kl_divergence import KLDivergence
from .l2_loss import L2Loss

__all__ = ['KLDivergence', 'L2Loss', 'ChannelWiseDivergence', 'DKDLoss']
