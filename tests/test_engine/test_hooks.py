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


FITNET_CFG = 'configs/fitnet/fitnet_resnet18-w32_resnet18-w8_digits-10pct_demo.py'


def fitnet(**overrides):
    """FitNet + KD on digits: a learnable 1x1 conv connector ('hint'), random teacher."""
    from mmengine.config import Config

    from mmkd.registry import MODELS
    cfg = Config.fromfile(FITNET_CFG).model
    cfg.teacher_ckpt = None
    cfg.update(overrides)
    torch.manual_seed(0)
    return MODELS.build(cfg)


def digits_batch(model, n=4):
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(0)
    data = dict(inputs=[torch.randint(0, 256, (3, 16, 16), generator=g, dtype=torch.uint8)
                        for _ in range(n)],
                data_samples=[DataSample().set_gt_label(i % 10) for i in range(n)])
    return model.data_preprocessor(data, True)


@pytest.mark.filterwarnings('ignore:SingleTeacherDistill')
def test_stopped_distillation_gives_the_connector_an_exactly_zero_gradient():
    """What DDP needs after StopDistillHook: every trainable parameter gets a gradient."""
    model = fitnet()
    data = digits_batch(model)
    connector = list(model.distiller.connectors['hint'].parameters())
    assert connector and [id(p) for p in model.distillation_parameters()] == [id(p) for p in connector]

    # Reference: the student alone (what the step trains once distillation is stopped).
    ref = model.architecture(**data, mode='loss')
    ref['loss'].backward()
    ref_grads = {n: p.grad.clone() for n, p in model.architecture.named_parameters()}
    model.zero_grad(set_to_none=True)

    model.distillation_stopped.fill_(True)
    with torch.no_grad():  # a diverged, unused connector must not poison the loss
        connector[0].fill_(float('nan'))
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss'}  # the student's key only: no extra zero-valued key
    assert torch.equal(losses['loss'], ref['loss'])
    losses['loss'].backward()
    for p in connector:
        assert p.grad is not None and torch.count_nonzero(p.grad) == 0
    for name, p in model.architecture.named_parameters():
        assert torch.equal(p.grad, ref_grads[name]), name


@pytest.mark.filterwarnings('ignore:SingleTeacherDistill')
def test_stopped_distillation_without_a_student_loss_is_an_error():
    model = fitnet(calculate_student_loss=False)
    model.distillation_stopped.fill_(True)
    with pytest.raises(RuntimeError, match=r'distillation is stopped .*calculate_student_loss=True'):
        model(**digits_batch(model), mode='loss')


def test_stop_distill_hook_drops_stale_distill_losses_from_the_log():
    """mmengine logs a key's last value until a new one comes: once stopped, none may."""
    from mmengine.logging import MessageHub
    hub = MessageHub(name='test_stop_distill_hook_log')
    model = SimpleNamespace(distillation_stopped=torch.tensor(False))
    runner = SimpleNamespace(model=model, epoch=0, iter=1, message_hub=hub,
                             logger=SimpleNamespace(info=lambda *a: None))

    def log_step():
        for key in ('loss', 'distill.loss_kd', 'distill.loss_fitnet'):
            hub.update_scalar(f'train/{key}', 1.0)
        hub.update_scalar('train/distill_weight_scale', 1.0)

    hook = StopDistillHook(stop_iter=2)
    log_step()
    hook.before_train_iter(runner, 1)
    assert 'train/distill.loss_kd' in hub.log_scalars
    runner.iter = 2
    hook.before_train_iter(runner, 2)
    assert bool(model.distillation_stopped)
    assert sorted(hub.log_scalars) == ['train/distill_weight_scale', 'train/loss']
    log_step()  # e.g. a resumed run's message hub, restored from a checkpoint
    runner.iter = 5
    hook.before_train_iter(runner, 5)
    assert sorted(hub.log_scalars) == ['train/distill_weight_scale', 'train/loss']


@pytest.mark.filterwarnings('ignore:SingleTeacherDistill')
def test_weight_hook_sets_the_algorithm_scale_and_its_distiller():
    """Every algorithm holds the factor (BaseAlgorithm.distill_loss_scale); one with a
    ConfigurableDistiller hands it to the distiller, which applies it."""
    model = fitnet()
    runner = SimpleNamespace(model=model, iter=3, epoch=0, message_hub=_Hub(),
                             train_dataloader=[0] * 4)
    DistillLossWeightHook(warmup=6).before_train_iter(runner, 0)
    assert model.distill_loss_scale == pytest.approx(0.5)
    assert model.distiller.loss_weight_scale == pytest.approx(0.5)


def test_weight_hook_refuses_a_model_without_distillation_losses():
    runner = SimpleNamespace(model=SimpleNamespace(), iter=0, epoch=0, message_hub=_Hub(),
                             train_dataloader=[0])
    with pytest.raises(TypeError, match='DistillLossWeightHook has no distillation loss'):
        DistillLossWeightHook(warmup=2).before_train_iter(runner, 0)
