"""Distillation losses: one per file, pure functions of tensors."""
from .acam_kd_loss import ACAMKDLoss
from .affinity_mimicking import AffinityMimickingLoss
from .bsd_loss import PixelBSDLoss, RegionBSDLoss
from .cwd import ChannelWiseDivergence
from .dkd_loss import DKDLoss
from .frs_loss import FRSClsLoss, FRSFeatureLoss
from .hard_distillation_loss import HardDistillationLoss
from .hfd_loss import HFDLoss
from .kl_divergence import KLDivergence
from .l2_loss import L2Loss
from .layer_norm_smooth_l1_loss import LayerNormSmoothL1Loss
from .llava_kd_losses import MDistLoss, RDistLoss
from .mgd_loss import MGDLoss
from .mgd_ssss_losses import (
    ContentAwareLoss,
    OhemCrossEntropyLoss,
    PixelConsistencyLoss,
    SemanticSensitiveLoss,
)
from .mimic_loss import MimicKLLoss
from .mst_losses import EnsembleKDLoss, LoadBalanceLoss, RoutedKDLoss
from .normalized_l1_loss import NormalizedL1Loss
from .per_sample_kl import PerSampleKLDivergence
from .preference_losses import DPOLoss, KTOPairLoss, sequence_log_probs

__all__ = ['ACAMKDLoss', 'AffinityMimickingLoss', 'PixelBSDLoss', 'RegionBSDLoss',
           'ChannelWiseDivergence', 'DKDLoss', 'FRSClsLoss', 'FRSFeatureLoss',
           'HardDistillationLoss', 'HFDLoss', 'KLDivergence', 'L2Loss', 'LayerNormSmoothL1Loss',
           'MDistLoss', 'RDistLoss', 'MGDLoss', 'ContentAwareLoss', 'OhemCrossEntropyLoss',
           'PixelConsistencyLoss', 'SemanticSensitiveLoss', 'MimicKLLoss', 'EnsembleKDLoss',
           'LoadBalanceLoss', 'RoutedKDLoss', 'NormalizedL1Loss', 'DPOLoss', 'KTOPairLoss',
           'PerSampleKLDivergence', 'sequence_log_probs']
