"""Hooks: loss-weight schedules, stop-distillation, MST-Distill stages, RNG state."""
from .distill_loss_weight_hook import DistillLossWeightHook
from .mst_stage_hook import MSTStageHook
from .random_state_hook import RandomStateHook
from .stop_distill_hook import StopDistillHook

__all__ = ['DistillLossWeightHook', 'StopDistillHook', 'MSTStageHook', 'RandomStateHook']
