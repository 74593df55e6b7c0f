"""MSTStageHook: stage boundaries, the official weight decays, switching the model."""
from types import SimpleNamespace

import pytest

from mmkd.engine.hooks import MSTStageHook


def test_stage_at_boundaries_and_overflow():
    hook = MSTStageHook(stages=[('cotrain', 3), ('masknet', 2), ('student', 4)])
    names = [hook.stage_at(t)[0] for t in range(11)]
    assert names == ['cotrain'] * 3 + ['masknet'] * 2 + ['student'] * 6
    assert hook.stage_at(5) == ('student', 0) and hook.stage_at(10) == ('student', 5)


def test_official_decay_schedule():
    # Official loop: after stage-3 epoch e (0-based), w_lb *= 0.9 if e % 10 == 0 and
    # w_kl *= 0.5 if e % 30 == 0. Replay that loop and compare epoch by epoch.
    hook = MSTStageHook(stages=[('student', 100)], by_epoch=True, kd_decay=(30, 0.5),
                        lb_decay=(10, 0.9))
    w_kl, w_lb = 1.0, 1.0
    for epoch in range(100):
        assert hook.decay_factor(hook.kd_decay, epoch + 0.5) == pytest.approx(w_kl)
        assert hook.decay_factor(hook.lb_decay, epoch + 0.5) == pytest.approx(w_lb)
        w_lb *= 0.9 if epoch % 10 == 0 else 1
        w_kl *= 0.5 if epoch % 30 == 0 else 1
    assert hook.decay_factor(None, 42) == 1.0


class FakeModel:
    STAGES = ('cotrain', 'masknet', 'student')

    def __init__(self):
        self.stage = 'student'
        self.calls = []
        self.combiner = SimpleNamespace(kd_scale=1.0, lb_scale=1.0)

    def set_stage(self, stage):
        self.calls.append(stage)
        self.stage = stage


def fake_runner(model, max_iters=6):
    logs = []
    scalars = {}
    return SimpleNamespace(
        model=model, iter=0, epoch=0, max_iters=max_iters, max_epochs=1,
        logger=SimpleNamespace(info=logs.append, warning=logs.append),
        message_hub=SimpleNamespace(update_scalar=scalars.__setitem__), logs=logs,
        scalars=scalars)


def test_hook_switches_stages_and_sets_decays():
    model = FakeModel()
    runner = fake_runner(model)
    # (the optimizer and the MaskNet selection are tested in test_mst_stage_optim.py)
    hook = MSTStageHook(stages=[['cotrain', 2], ['masknet', 1], ['student', 3]],
                        kd_decay=(1, 0.5), lb_decay=(2, 0.9), fresh_optimizer_per_stage=False,
                        keep_best_masknet=False)
    hook.before_train(runner)
    seen = []
    for it in range(6):
        runner.iter = it
        hook.before_train_iter(runner, it)
        seen.append(model.stage)
    assert seen == ['cotrain', 'cotrain', 'masknet', 'student', 'student', 'student']
    assert model.calls == ['cotrain', 'masknet', 'student']  # set only on changes
    # student progress 2 at the last iteration: kd 0.5**ceil(2/1), lb 0.9**ceil(2/2)
    assert model.combiner.kd_scale == pytest.approx(0.25)
    assert model.combiner.lb_scale == pytest.approx(0.9)
    assert runner.scalars['train/mst_kd_scale'] == pytest.approx(0.25)


def test_hook_errors():
    with pytest.raises(ValueError, match='length must be an integer >= 1'):
        MSTStageHook(stages=[('student', 0)])
    hook = MSTStageHook(stages=[('warmup', 2)])
    with pytest.raises(ValueError, match=r"stages\[0\]='warmup'; valid stages"):
        hook.before_train(fake_runner(FakeModel()))
    with pytest.raises(TypeError, match='needs a MultiTeacherDistill'):
        MSTStageHook(stages=[('student', 2)]).before_train(fake_runner(object()))
    runner = fake_runner(FakeModel(), max_iters=10)
    MSTStageHook(stages=[('student', 2)]).before_train(runner)
    assert 'the stages last 2 iterations but the run has 10' in runner.logs[0]
