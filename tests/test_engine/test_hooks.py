from types import SimpleNamespace

import pytest
import torch

from mmkd.engine import DistillLossWeightHook, StopDistillHook


def test_weight_schedule_values():
    hook = DistillLossWeightHook(warmup=10, start_factor=0.0, decay_begin=20, decay_end=30,
                                 end_factor=0.5)
    assert hook.factor(0) == 0.0
    assert hook.factor(5) == pytest.approx(0.5)
    assert hook.factor(10) == 1.0 and hook.factor(19) == 1.0
    assert hook.factor(25) == pytest.approx(0.75)
    assert hook.factor(40) == 0.5
    with pytest.raises(ValueError):
        DistillLossWeightHook(decay_begin=5)


class _Hub:
    def __init__(self):
        self.values = {}

    def update_scalar(self, key, value):
        self.values[key] = value


def test_weight_hook_sets_distiller_scale():
    distiller = SimpleNamespace(loss_weight_scale=1.0)
    model = SimpleNamespace(distiller=distiller)
    runner = SimpleNamespace(model=model, iter=3, epoch=0, message_hub=_Hub(),
                             train_dataloader=[0] * 4)
    DistillLossWeightHook(warmup=6).before_train_iter(runner, 0)
    assert distiller.loss_weight_scale == pytest.approx(0.5)
    runner.epoch = 1
    DistillLossWeightHook(warmup=2, by_epoch=True).before_train_iter(runner, 2)
    assert distiller.loss_weight_scale == pytest.approx((1 + 2 / 4) / 2)
    assert runner.message_hub.values['train/distill_weight_scale'] == distiller.loss_weight_scale


def test_stop_distill_hook():
    model = SimpleNamespace(distillation_stopped=torch.tensor(False))
    logger = SimpleNamespace(info=lambda *a: None)
    runner = SimpleNamespace(model=model, epoch=1, iter=10, logger=logger)
    hook = StopDistillHook(stop_epoch=2)
    hook.before_train_epoch(runner)
    assert not bool(model.distillation_stopped)
    runner.epoch = 2
    hook.before_train_epoch(runner)
    assert bool(model.distillation_stopped)
    with pytest.raises(ValueError):
        StopDistillHook()
