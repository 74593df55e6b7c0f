"""Stop distillation after a given epoch or iteration."""
from __future__ import annotations

from typing import Optional

from mmengine.hooks import Hook

from mmkd.registry import HOOKS

from .distill_loss_weight_hook import unwrap


@HOOKS.register_module()
class StopDistillHook(Hook):
    """From ``stop_epoch`` (or ``stop_iter``) on, train the student on its task alone.

    The teacher forward and the distillation losses are skipped. The decision lives
    in the algorithm's persistent ``distillation_stopped`` buffer, so it survives
    checkpoints and resumes.

    Args:
        stop_epoch (int, optional): first epoch (0-based) without distillation.
        stop_iter (int, optional): first iteration without distillation.
    """

    priority = 'LOW'

    def __init__(self, stop_epoch: Optional[int] = None, stop_iter: Optional[int] = None) -> None:
        if (stop_epoch is None) == (stop_iter is None):
            raise ValueError('give exactly one of stop_epoch and stop_iter')
        self.stop_epoch = stop_epoch
        self.stop_iter = stop_iter

    def _stop(self, runner) -> None:
        model = unwrap(runner.model)
        if not hasattr(model, 'distillation_stopped'):
            raise TypeError(f'{type(model).__name__} cannot stop distillation '
                            '(no `distillation_stopped` buffer)')
        if not bool(model.distillation_stopped):
            model.distillation_stopped.fill_(True)
            runner.logger.info(f'StopDistillHook: distillation stopped at epoch '
                               f'{runner.epoch}, iter {runner.iter}')

    def before_train_epoch(self, runner) -> None:
        if self.stop_epoch is not None and runner.epoch >= self.stop_epoch:
            self._stop(runner)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self.stop_iter is not None and runner.iter >= self.stop_iter:
            self._stop(runner)
