from .distill_loss_weight_hook import DistillLossWeightHook
from .stop_distill_hook import StopDistillHook

__all__ = ['DistillLossWeightHook', 'StopDistillHook']
# issue 9 (MST-Distill)
from .mst_stage_hook import MSTStageHook  # noqa: E402

__all__ += ['MSTStageHook']
# issue 11 (exact resume)
from .random_state_hook import RandomStateHook  # noqa: E402

__all__ += ['RandomStateHook']
