"""Schedule the weight of the distillation losses."""
from __future__ import annotations

from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmkd.registry import HOOKS


def unwrap(model):
    return model.module if is_model_wrapper(model) else model


def get_distiller(runner):
    model = unwrap(runner.model)
    distiller = getattr(model, 'distiller', None)
    if distiller is None:
        raise TypeError(f'{type(model).__name__} has no distiller; this hook only works '
                        'with mmkd distillation algorithms')
    return distiller


def set_distill_loss_scale(runner, value: float) -> None:
    """Set the factor of every ``distill.*`` term of the runner's model.

    Every mmkd algorithm (``BaseAlgorithm``) holds it as ``distill_loss_scale``; a model
    that is not one but owns a distiller with ``loss_weight_scale`` gets it there.
    """
    model = unwrap(runner.model)
    if hasattr(type(model), 'distill_loss_scale'):
        model.distill_loss_scale = value
        return
    distiller = getattr(model, 'distiller', None)
    if distiller is None or not hasattr(distiller, 'loss_weight_scale'):
        raise TypeError(f'{type(model).__name__} is not an mmkd algorithm (no '
                        '`distill_loss_scale`) and has no distiller with a `loss_weight_scale`; '
                        'DistillLossWeightHook has no distillation loss to weight')
    distiller.loss_weight_scale = value


@HOOKS.register_module()
class DistillLossWeightHook(Hook):
    """Linear warm-up, plateau and linear decay of all distillation loss weights.

    The factor multiplying every ``distill.*`` loss at progress ``t`` (iterations,
    or epochs with the fractional part when ``by_epoch``) is::

        start_factor + (1 - start_factor) * t / warmup     for t < warmup
        1                                                  for warmup <= t < decay_begin
        linear from 1 to end_factor over [decay_begin, decay_end], then end_factor

    It is recomputed from the runner's counters before every iteration, so it needs
    no state and resumes exactly. The value is logged as ``distill_weight_scale``. It
    is set on the algorithm (``BaseAlgorithm.distill_loss_scale``), so it works with
    every mmkd algorithm; a factor of exactly 1 multiplies nothing.

    Args:
        warmup (int): length of the warm-up (0 = none). DKD warms up over 20 epochs.
        start_factor (float): factor at t=0.
        decay_begin (int, optional): start of the decay.
        decay_end (int, optional): end of the decay.
        end_factor (float): factor after the decay.
        by_epoch (bool): count in epochs instead of iterations.
    """

    priority = 'NORMAL'

    def __init__(self,
                 warmup: int = 0,
                 start_factor: float = 0.0,
                 decay_begin: Optional[int] = None,
                 decay_end: Optional[int] = None,
                 end_factor: float = 0.0,
                 by_epoch: bool = False) -> None:
        if warmup < 0:
            raise ValueError(f'warmup must be >= 0, got {warmup}')
        if (decay_begin is None) != (decay_end is None):
            raise ValueError('decay_begin and decay_end must be given together')
        if decay_begin is not None and not warmup <= decay_begin < decay_end:
            raise ValueError(f'need warmup <= decay_begin < decay_end, got {warmup}, '
                             f'{decay_begin}, {decay_end}')
        self.warmup = warmup
        self.start_factor = start_factor
        self.decay_begin = decay_begin
        self.decay_end = decay_end
        self.end_factor = end_factor
        self.by_epoch = by_epoch

    def factor(self, t: float) -> float:
        if self.warmup and t < self.warmup:
            return self.start_factor + (1.0 - self.start_factor) * t / self.warmup
        if self.decay_begin is None or t < self.decay_begin:
            return 1.0
        if t >= self.decay_end:
            return self.end_factor
        frac = (t - self.decay_begin) / (self.decay_end - self.decay_begin)
        return 1.0 + (self.end_factor - 1.0) * frac

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self.by_epoch:
            iters_per_epoch = max(len(runner.train_dataloader), 1)
            t = runner.epoch + batch_idx / iters_per_epoch
        else:
            t = runner.iter
        value = self.factor(t)
        set_distill_loss_scale(runner, value)
        runner.message_hub.update_scalar('train/distill_weight_scale', value)
