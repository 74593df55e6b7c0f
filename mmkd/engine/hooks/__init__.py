from .distill_loss_weight_hook import DistillLossWeightHook
from .stop_distill_hook import StopDistillHook

__all__ = ['DistillLossWeightHook', 'StopDistillHook']
