"""Stop distillation after a given epoch or iteration."""
from __future__ import annotations

from typing import Optional

from mmengine.hooks import Hook

from mmkd.registry import HOOKS

from .distill_loss_weight_hook import unwrap

# mmengine's RuntimeInfoHook stores each logged loss as 'train/<name>'; mmkd's
# distillation losses are named 'distill.<loss name>'.
_DISTILL_PREFIX = 'train/distill.'


@HOOKS.register_module()
class StopDistillHook(Hook):
    """From ``stop_epoch`` (or ``stop_iter``) on, train the student on its task alone.

    The teacher forward and the distillation losses are skipped. The decision lives
    in the algorithm's persistent ``distillation_stopped`` buffer (every mmkd algorithm
    has it: ``BaseAlgorithm``), so it survives checkpoints and resumes. A step with
    no task loss left (MST-Distill's 'masknet' stage, LLaVA-MoD without
    ``lm_loss_weight``, ``calculate_student_loss=False``) raises an error naming the
    algorithm and the stage.

    Under DDP (no ``find_unused_parameters``) the algorithm keeps learnable
    connectors and loss parameters in the graph with an exactly-zero gradient
    (``BaseAlgorithm.touch_distillation_parameters``), so the steps after the stop
    reduce every parameter as before. mmengine's log would keep printing the last
    ``distill.*`` values (a key's history is shown until a new value arrives), so
    once stopped this hook drops those histories from the message hub: the log then
    shows the student's losses only.

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

    @staticmethod
    def _forget_distill_losses(runner) -> None:
        """Drop the ``train/distill.*`` histories, so the log shows no stale values."""
        hub = getattr(runner, 'message_hub', None)
        if hub is None:
            return
        scalars = hub.log_scalars
        for key in [k for k in scalars if k.startswith(_DISTILL_PREFIX)]:
            del scalars[key]

    def before_train_epoch(self, runner) -> None:
        if self.stop_epoch is not None and runner.epoch >= self.stop_epoch:
            self._stop(runner)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self.stop_iter is not None and runner.iter >= self.stop_iter:
            self._stop(runner)
        # Also after a resume past the stop: the checkpoint's message hub holds them.
        if bool(getattr(unwrap(runner.model), 'distillation_stopped', False)):
            self._forget_distill_losses(runner)
