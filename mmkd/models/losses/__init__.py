from .acam_kd_loss import ACAMKDLoss
from .cwd import ChannelWiseDivergence
from .dkd_loss import DKDLoss
from .kl_divergence import KLDivergence
from .l2_loss import L2Loss
from .mgd_loss import MGDLoss

__all__ = ['ACAMKDLoss', 'KLDivergence', 'L2Loss', 'ChannelWiseDivergence', 'DKDLoss', 'MGDLoss']
# issue 6 (DMAE/G2SD)
from .hard_distillation_loss import HardDistillationLoss  # noqa: E402
from .layer_norm_smooth_l1_loss import LayerNormSmoothL1Loss  # noqa: E402
from .normalized_l1_loss import NormalizedL1Loss  # noqa: E402

__all__ += ['NormalizedL1Loss', 'LayerNormSmoothL1Loss', 'HardDistillationLoss']
# issue 9 (MST-Distill)
from .mst_losses import EnsembleKDLoss, LoadBalanceLoss, RoutedKDLoss  # noqa: E402

__all__ += ['RoutedKDLoss', 'LoadBalanceLoss', 'EnsembleKDLoss']
# issue 7 (TinyCLIP)
from .affinity_mimicking import AffinityMimickingLoss  # noqa: E402

__all__ += ['AffinityMimickingLoss']
# issue 8 (LLaVA-MoD)
from .mimic_loss import MimicKLLoss  # noqa: E402
from .preference_losses import DPOLoss, KTOPairLoss, sequence_log_probs  # noqa: E402

__all__ += ['MimicKLLoss', 'DPOLoss', 'KTOPairLoss', 'sequence_log_probs']
# issue 5 (HFD/BSD collaborative distillation)
from .bsd_loss import PixelBSDLoss, RegionBSDLoss  # noqa: E402
from .hfd_loss import HFDLoss  # noqa: E402

__all__ += ['HFDLoss', 'RegionBSDLoss', 'PixelBSDLoss']
# issue 4 (MGD semi-supervised segmentation)
from .mgd_ssss_losses import (  # noqa: E402
                              ContentAwareLoss,
                              OhemCrossEntropyLoss,
                              PixelConsistencyLoss,
                              SemanticSensitiveLoss,
)

__all__ += ['PixelConsistencyLoss', 'SemanticSensitiveLoss', 'ContentAwareLoss',
            'OhemCrossEntropyLoss']
# issue 6 (G2SD specific stage, detection)
from .frs_loss import FRSClsLoss, FRSFeatureLoss  # noqa: E402

__all__ += ['FRSFeatureLoss', 'FRSClsLoss']
# issue 8 (LLaVA-KD)
from .llava_kd_losses import MDistLoss, RDistLoss  # noqa: E402

__all__ += ['MDistLoss', 'RDistLoss']
# issue 20 (MST-Distill's KD terms through the distiller)
from .per_sample_kl import PerSampleKLDivergence  # noqa: E402

__all__ += ['PerSampleKLDivergence']
