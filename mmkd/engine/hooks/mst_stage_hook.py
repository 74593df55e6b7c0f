"""Switch MultiTeacherDistill between MST-Distill's training stages."""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple, Union

from mmengine.hooks import Hook

from mmkd.registry import HOOKS

from .distill_loss_weight_hook import unwrap


@HOOKS.register_module()
class MSTStageHook(Hook):
    """Run MST-Distill's stages one after the other in a single training run.

    ``stages`` lists ``(name, length)`` pairs (or ``dict(name=..., length=...)``),
    lengths in iterations (or epochs with ``by_epoch=True``). Before every iteration
    the stage is recomputed from the runner's counter, so a resumed run continues
    in the right stage without saved state. Past the last boundary the last stage
    goes on.

    Official schedule (``main-MST-Distill.py``): 100 epochs of each of 'cotrain',
    'masknet', 'student'; during 'student', ``w_kl`` is halved after stage epochs
    0, 30, 60, 90 and ``w_lb`` multiplied by 0.9 after stage epochs 0, 10, 20, ...
    (``kd_decay=(30, 0.5)``, ``lb_decay=(10, 0.9)``): during stage epoch e the
    factor is ``factor ** ceil(e / every)``. The factors are set on an ``MSTRouter``
    combiner (``kd_scale``, ``lb_scale``) and logged.

    Args:
        stages (list): ``[('cotrain', n1), ('masknet', n2), ('student', n3)]``; any
            subset and order of MultiTeacherDistill.STAGES.
        by_epoch (bool): lengths (and decay periods) in epochs instead of iterations.
        kd_decay (tuple, optional): ``(every, factor)`` for the routed KD weight.
        lb_decay (tuple, optional): ``(every, factor)`` for the load-balancing weight.
    """

    priority = 'NORMAL'

    def __init__(self,
                 stages: Sequence[Union[Tuple[str, int], dict]],
                 by_epoch: bool = False,
                 kd_decay: Optional[Sequence[float]] = None,
                 lb_decay: Optional[Sequence[float]] = None) -> None:
        parsed: List[Tuple[str, int]] = []
        for i, stage in enumerate(stages or ()):
            if isinstance(stage, dict):
                unknown = set(stage) - {'name', 'length'}
                if unknown or 'name' not in stage or 'length' not in stage:
                    raise KeyError(f"stages[{i}] must be dict(name=..., length=...), got {stage}")
                stage = (stage['name'], stage['length'])
            name, length = stage
            if not isinstance(length, int) or length < 1:
                raise ValueError(f'stages[{i}] ({name!r}) length must be an integer >= 1, '
                                 f'got {length!r}')
            parsed.append((name, length))
        if not parsed:
            raise ValueError('MSTStageHook.stages is empty')
        for key, decay in (('kd_decay', kd_decay), ('lb_decay', lb_decay)):
            if decay is not None and (len(decay) != 2 or decay[0] <= 0):
                raise ValueError(f'{key} must be (every > 0, factor), got {decay}')
        self.stages = parsed
        self.by_epoch = by_epoch
        self.kd_decay = tuple(kd_decay) if kd_decay is not None else None
        self.lb_decay = tuple(lb_decay) if lb_decay is not None else None

    def stage_at(self, t: float) -> Tuple[str, float]:
        """Stage at progress ``t`` and the progress within that stage."""
        begin = 0
        for name, length in self.stages:
            if t < begin + length:
                return name, t - begin
            begin += length
        name, length = self.stages[-1]
        return name, t - (begin - length)

    @staticmethod
    def decay_factor(decay: Optional[Tuple[float, float]], progress: float) -> float:
        if decay is None:
            return 1.0
        every, factor = decay
        return float(factor)**math.ceil(math.floor(progress) / every)

    def before_train(self, runner) -> None:
        model = unwrap(runner.model)
        valid = getattr(model, 'STAGES', None)
        if valid is None or not hasattr(model, 'set_stage'):
            raise TypeError(f'MSTStageHook needs a MultiTeacherDistill model, got '
                            f'{type(model).__name__}')
        for i, (name, _) in enumerate(self.stages):
            if name not in valid:
                raise ValueError(f'MSTStageHook.stages[{i}]={name!r}; valid stages: {valid}')
        total = sum(length for _, length in self.stages)
        planned = runner.max_epochs if self.by_epoch else runner.max_iters
        if total != planned:
            runner.logger.warning(f'MSTStageHook: the stages last {total} '
                                  f'{"epochs" if self.by_epoch else "iterations"} but the run '
                                  f'has {planned}; the last stage covers the difference')

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self.by_epoch:
            t = runner.epoch + batch_idx / max(len(runner.train_dataloader), 1)
        else:
            t = runner.iter
        name, progress = self.stage_at(t)
        model = unwrap(runner.model)
        if model.stage != name:
            model.set_stage(name)
            runner.logger.info(f'MSTStageHook: stage {name!r} from iteration {runner.iter}')
        combiner = getattr(model, 'combiner', None)
        if name == 'student' and hasattr(combiner, 'kd_scale'):
            combiner.kd_scale = self.decay_factor(self.kd_decay, progress)
            combiner.lb_scale = self.decay_factor(self.lb_decay, progress)
            runner.message_hub.update_scalar('train/mst_kd_scale', combiner.kd_scale)
            runner.message_hub.update_scalar('train/mst_lb_scale', combiner.lb_scale)
