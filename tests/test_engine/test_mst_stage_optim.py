"""MSTStageHook as the official MST-Distill code runs its stages (issue 17): a fresh
optimizer per stage, each stage's lr, the MaskNets of lowest val loss, exact resume."""
import math
import re
from types import SimpleNamespace

import pytest
import torch
from mmengine.optim import OptimWrapper
from mmpretrain.structures import DataSample
from torch import nn

from mmkd.engine.hooks import MSTStageHook
from mmkd.registry import MODELS

pytestmark = pytest.mark.filterwarnings('ignore:MultiTeacherDistill')
TAU = 4.0


# A runner and a model that only have what the hook uses --------------------------------
class FakeModel(nn.Module):
    STAGES = ('cotrain', 'masknet', 'student')

    def __init__(self):
        super().__init__()
        self.stage = 'cotrain'
        self.student = nn.Linear(3, 2)
        self.masknets = nn.ModuleDict(dict(m=nn.Linear(2, 2, bias=False)))
        nn.init.zeros_(self.masknets['m'].weight)
        self.ways = []

    def set_stage(self, stage):
        self.stage = stage


def fake_runner(model, optimizer, max_iters, val_batches=(), train_len=10, schedulers=None):
    logs = []
    return SimpleNamespace(
        model=model, iter=0, epoch=0, max_iters=max_iters, max_epochs=1, seed=0, cfg={},
        optim_wrapper=OptimWrapper(optimizer), param_schedulers=schedulers,
        train_dataloader=[None] * train_len, val_dataloader=list(val_batches),
        logger=SimpleNamespace(info=logs.append, warning=logs.append), logs=logs,
        message_hub=SimpleNamespace(update_scalar=lambda *a: None))


def student_step(model, optimizer, seed):
    """One update of the student on a fixed random batch; returns the gradient."""
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(4, 3, generator=g), torch.randn(4, 2, generator=g)
    optimizer.zero_grad()
    ((model.student(x) - y)**2).mean().backward()
    grad = model.student.weight.grad.clone()
    optimizer.step()
    return grad


def run(hook, runner, iters, on_iter=None):
    for it in iters:
        runner.iter = it
        hook.before_train_iter(runner, it)
        if on_iter is not None:
            on_iter(it)
        hook.after_train_iter(runner, it)


# Fresh optimizer -----------------------------------------------------------------------
@pytest.mark.parametrize('fresh', [True, False])
def test_adam_state_is_fresh_at_each_stage_switch(fresh):
    torch.manual_seed(0)
    model = FakeModel()
    betas, lr = (0.9, 0.999), 1e-2
    optimizer = torch.optim.Adam(model.student.parameters(), lr=lr, betas=betas)
    runner = fake_runner(model, optimizer, max_iters=6)
    hook = MSTStageHook([('cotrain', 3), ('masknet', 1), ('student', 2)],
                        fresh_optimizer_per_stage=fresh, keep_best_masknet=False)
    hook.before_train(runner)
    weight = model.student.weight
    for it in range(6):
        runner.iter = it
        hook.before_train_iter(runner, it)
        state = optimizer.state.get(weight, {})
        if it in (3, 4):  # first iteration of 'masknet' and of 'student'
            assert (state == {}) == fresh, (it, state.keys())
        if model.stage == 'masknet':
            continue  # the student gets no gradient in that stage
        before = weight.detach().clone()
        grad = student_step(model, optimizer, seed=it)
        step = float(optimizer.state[weight]['step'])
        if it == 4:
            # A new Adam's first step: m = (1-b1) g, v = (1-b2) g^2, the bias corrections
            # make the update lr * g / (|g| + eps') == lr * sign(g) (up to eps).
            if fresh:
                assert step == 1
                assert torch.allclose(optimizer.state[weight]['exp_avg'], (1 - betas[0]) * grad)
                expected = before - lr * grad / (grad.abs() + 1e-8)
                assert torch.allclose(weight.detach(), expected, atol=1e-6)
            else:
                assert step == 4  # 3 cotrain steps + this one: one state across stages
                expected = before - lr * grad / (grad.abs() + 1e-8)
                assert not torch.allclose(weight.detach(), expected, atol=1e-6)
    fresh_logs = [m for m in runner.logs if 'a fresh optimizer' in m]
    assert len(fresh_logs) == (2 if fresh else 0)
    if fresh:
        assert "stage 'masknet' (the state of 2 parameters cleared)" in fresh_logs[0]
        assert "stage 'student' (the state of 0 parameters cleared)" in fresh_logs[1]


def test_stage_lr_keeps_group_ratios_and_survives_a_checkpoint():
    model = FakeModel()
    optimizer = torch.optim.SGD([dict(params=[model.student.weight]),
                                 dict(params=[model.student.bias], lr=0.05)], lr=0.5,
                                momentum=0.9)
    stage_lr = dict(cotrain=1e-3, masknet=5e-3, student=2e-4)
    stages = [('cotrain', 2), ('masknet', 2), ('student', 2)]
    runner = fake_runner(model, optimizer, max_iters=6)
    hook = MSTStageHook(stages, stage_lr=stage_lr, keep_best_masknet=False)
    hook.before_train(runner)
    seen = {}
    run(hook, runner, range(3), lambda it: seen.setdefault(
        it, [g['lr'] for g in optimizer.param_groups]))
    # Interrupted after iteration 2 (inside 'masknet'): a new hook, the optimizer rebuilt
    # from the config (lr 0.5, 0.05) and its state dict loaded, as mmengine resumes.
    checkpoint = {'optimizer': optimizer.state_dict()}
    hook.before_save_checkpoint(runner, checkpoint)
    optimizer2 = torch.optim.SGD([dict(params=[model.student.weight]),
                                  dict(params=[model.student.bias], lr=0.05)], lr=0.5,
                                 momentum=0.9)
    optimizer2.load_state_dict(checkpoint['optimizer'])
    runner2 = fake_runner(model, optimizer2, max_iters=6)
    runner2.iter = 3
    hook2 = MSTStageHook(stages, stage_lr=stage_lr, keep_best_masknet=False)
    hook2.after_load_checkpoint(runner2, checkpoint)
    hook2.before_train(runner2)
    run(hook2, runner2, range(3, 6), lambda it: seen.setdefault(
        it, [g['lr'] for g in optimizer2.param_groups]))
    expected = {0: 1e-3, 1: 1e-3, 2: 5e-3, 3: 5e-3, 4: 2e-4, 5: 2e-4}
    for it, lr in expected.items():
        assert seen[it] == pytest.approx([lr, lr * 0.1]), it

    with pytest.raises(ValueError, match='stage_lr .*cannot be combined with param_scheduler'):
        MSTStageHook(stages, stage_lr=stage_lr, keep_best_masknet=False).before_train(
            fake_runner(model, optimizer, 6, schedulers=[object()]))
    with pytest.raises(KeyError, match=r"stage_lr: 'warmup' is not one of the stages"):
        MSTStageHook(stages, stage_lr=dict(warmup=1e-3))
    with pytest.raises(ValueError, match=r"stage_lr\['student'\] must be a number > 0"):
        MSTStageHook(stages, stage_lr=dict(student=0))


# Best MaskNets -------------------------------------------------------------------------
class ScriptedHook(MSTStageHook):
    """The val loss of the i-th evaluation is ``losses[i]``."""

    def __init__(self, *args, losses, **kwargs):
        super().__init__(*args, **kwargs)
        self.script = list(losses)
        self.calls = 0

    def masknet_val_loss(self, runner):
        value = self.script[self.calls]
        self.calls += 1
        return value


def masknet_weight(model):
    return float(model.masknets['m'].weight.detach()[0, 0])


def scripted_run(keep, interval=1, losses=(0.5, 0.3, 0.4, 0.35), length=4, split=None):
    """cotrain 1, masknet ``length``, student 2 iterations; during 'masknet' iteration i
    (0-based in the stage) the MaskNet's weights are set to i + 1. ``split``: stop after
    that many iterations, checkpoint, and resume with a new hook."""
    model = FakeModel()
    optimizer = torch.optim.SGD(model.student.parameters(), lr=0.1)
    total = 1 + length + 2
    stages = [('cotrain', 1), ('masknet', length), ('student', 2)]
    kwargs = dict(keep_best_masknet=keep, masknet_val_interval=interval)
    batches = [dict(inputs=None)]
    runner = fake_runner(model, optimizer, total, val_batches=batches)
    hook = ScriptedHook(stages, losses=losses, **kwargs)
    model.data_preprocessor = lambda batch, training: batch
    hook.before_train(runner)
    weights = []

    def on_iter(it):
        if model.stage == 'masknet':
            with torch.no_grad():
                model.masknets['m'].weight.fill_(it)  # global iteration it = stage's it
        weights.append(masknet_weight(model))

    if split is None:
        run(hook, runner, range(total), on_iter)
    else:
        run(hook, runner, range(split), on_iter)
        checkpoint = {}
        hook.before_save_checkpoint(runner, checkpoint)
        import io  # the hook's entry loads with weights_only=True (no pickled objects)
        buf = io.BytesIO()
        torch.save(checkpoint, buf)
        buf.seek(0)
        checkpoint = torch.load(buf, weights_only=True)
        scripted = hook.calls
        hook = ScriptedHook(stages, losses=losses[scripted:], **kwargs)
        hook.after_load_checkpoint(runner, checkpoint)
        runner.iter = split
        hook.before_train(runner)
        run(hook, runner, range(split, total), on_iter)
    return model, runner, weights


def test_the_masknets_of_lowest_val_loss_enter_the_student_stage():
    model, runner, weights = scripted_run(keep=True)
    # MaskNet iterations 1..4 set weights 1..4; val losses 0.5, 0.3, 0.4, 0.35 -> the
    # MaskNets after iteration 3 (weights 2) are the best; the student stage starts with them.
    assert weights[:5] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert weights[5:] == [2.0, 2.0]
    assert masknet_weight(model) == 2.0
    kept = [m for m in runner.logs if 'the next stage uses the MaskNets' in m]
    assert len(kept) == 1
    assert 'of iteration 3 (val loss 0.3, the lowest of 4 evaluations; the last MaskNets ' \
           'had 0.35)' in kept[0]
    assert sum('MaskNet val loss' in m for m in runner.logs) == 4


def test_keep_best_masknet_false_keeps_the_last():
    model, runner, weights = scripted_run(keep=False)
    assert weights[5:] == [4.0, 4.0] and masknet_weight(model) == 4.0
    assert not any('MaskNet val loss' in m for m in runner.logs)


def test_interval_and_stage_end_and_ties():
    # interval 2 over a 5-iteration stage: evaluations after stage iterations 2, 4 and 5
    # (the end); a tie keeps the earlier MaskNets.
    model, runner, weights = scripted_run(keep=True, interval=2, losses=(0.4, 0.2, 0.2),
                                          length=5)
    evaluated = [int(re.search(r'after iteration (\d+)', m).group(1))
                 for m in runner.logs if 'MaskNet val loss' in m]
    assert evaluated == [3, 5, 6]  # global iteration counts (1 cotrain iteration first)
    assert masknet_weight(model) == 4.0  # set during stage iteration 4 (global iteration 5)


@pytest.mark.parametrize('split', [2, 3, 5, 6])
def test_resume_inside_and_at_the_end_of_the_masknet_stage(split):
    # split 2, 3: inside the stage (before and after the best); 5: right at its end (the
    # next iteration restores); 6: inside the student stage.
    straight, _, w_straight = scripted_run(keep=True)
    resumed, runner, w_resumed = scripted_run(keep=True, split=split)
    assert w_resumed == w_straight
    assert masknet_weight(resumed) == masknet_weight(straight) == 2.0
    if split <= 5:
        assert any('the next stage uses the MaskNets of iteration 3' in m for m in runner.logs)


def test_new_run_from_load_from_forgets_an_earlier_selection():
    model = FakeModel()
    runner = fake_runner(model, torch.optim.SGD(model.student.parameters(), lr=0.1), 7)
    hook = MSTStageHook([('cotrain', 1), ('masknet', 4), ('student', 2)],
                        keep_best_masknet=False)
    hook.after_load_checkpoint(runner, {'mst_stage_hook': dict(
        best_loss=0.1, best_at=3, best_state={'m.weight': torch.ones(2, 2)}, last_loss=0.2,
        evaluations=2, lr_mult=None)})
    hook.before_train(runner)  # runner.iter == 0: not a resume
    assert hook.best_state is None and math.isinf(hook.best_loss)


# The val loss itself, on a real MultiTeacherDistill -----------------------------------
def encoder(dim):
    return dict(type='MLPEncoder', in_dim=dim, hidden_dims=(6, ))


PP = dict(type='mmkd.MultiModalDataPreprocessor', modalities=dict(a=dict(), b=dict()))


def classifier(**encoders):
    return dict(type='mmkd.MultiModalClassifier', num_classes=3, hidden_dim=6,
                encoders=encoders, data_preprocessor=PP)


def tiny_mst():
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='MultiTeacherDistill',
        architecture=classifier(a=encoder(5)),
        student_input_key=['a'], student_logits='fc2',
        teachers=dict(
            mm=dict(model=classifier(a=encoder(5), b=encoder(4)), input_key=['a', 'b'],
                    masknets=[dict(layer='fusion', type='MaskNet1d', feat_dim=12, num_heads=3),
                              dict(layer='fc1', type='MaskNet1d', feat_dim=6, num_heads=3)]),
            aux=dict(model=classifier(b=encoder(4)), input_key=['b'],
                     masknets=[dict(layer='fc1', type='MaskNet1d', feat_dim=6, num_heads=3)])),
        combiner=dict(type='MSTRouter', num_classes=3, topk=1, tau=TAU),
        stage='masknet', masknet_tau=TAU))


def val_batches(sizes=(3, 3, 2), keys=('a', 'b'), seed=1):
    g = torch.Generator().manual_seed(seed)
    dims = dict(a=5, b=4)
    out = []
    for n in sizes:
        inputs = {k: [torch.randn(dims[k], generator=g) for _ in range(n)] for k in keys}
        out.append(dict(inputs=inputs,
                        data_samples=[DataSample().set_gt_label(i % 3) for i in range(n)]))
    return out


def per_batch_kl(model, batches):
    """For each val batch, teacher -> [T^2 KL(p_S || p_masked) (batchmean) per MaskNet],
    written out with forward hooks of the test's own."""
    def kl(s, t):
        p_s = torch.softmax(s.double() / TAU, 1)
        log_t = torch.log_softmax(t.double() / TAU, 1)
        return float(TAU**2 * (p_s * (torch.log(p_s) - log_t)).sum(1).mean())

    layers = dict(mm=['fusion', 'fc1'], aux=['fc1'])
    keys = dict(mm=['mm_0', 'mm_1'], aux=['aux_0'])  # MultiTeacherDistill's MaskNet names
    out = []
    with torch.no_grad():
        for batch in batches:
            a = torch.stack(batch['inputs']['a'])
            b = torch.stack(batch['inputs']['b'])
            s = model.architecture(dict(a=a), mode='tensor')
            values = {}
            for name, inputs in (('mm', dict(a=a, b=b)), ('aux', dict(b=b))):
                teacher = model.teachers[name]
                values[name] = []
                for layer, key in zip(layers[name], keys[name]):
                    masknet = model.masknets[key]
                    handle = getattr(teacher, layer).register_forward_hook(
                        lambda m, i, o, masknet=masknet: masknet(o))
                    try:
                        values[name].append(kl(s, teacher(inputs, mode='tensor')))
                    finally:
                        handle.remove()
            out.append(values)
    return out


def test_masknet_val_loss_is_the_official_stage2_val_loss():
    model = tiny_mst()
    model.train()
    sizes = (3, 3, 2)
    batches = val_batches(sizes)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    runner = fake_runner(model, optimizer, max_iters=3, val_batches=batches)
    hook = MSTStageHook([('masknet', 3)])
    hook.before_train(runner)
    rng = torch.get_rng_state()
    value = hook.masknet_val_loss(runner)
    assert torch.equal(torch.get_rng_state(), rng)
    assert model.training and model.masknets.training  # back in training mode
    # a DistillLossWeightHook factor is not part of the official (unweighted) val loss
    model.distill_loss_scale = 0.5
    assert hook.masknet_val_loss(runner) == value and model.distill_loss_scale == 0.5
    model.distill_loss_scale = 1.0
    kls = per_batch_kl(model.eval(), batches)
    # main-MST-Distill.py, stage-2 validation: per batch, for each teacher the mean over
    # its MaskNets, summed over the teachers; then the mean over the batches.
    official = sum(sum(sum(v) / len(v) for v in b.values()) for b in kls) / len(kls)
    # (float32 in the model: a few 1e-7 of absolute error after the KL's cancellation)
    assert value == pytest.approx(official, abs=2e-6)
    # what other aggregations would give is farther away than that
    all_masknets = sum(sum(sum(v) for v in b.values()) / 3 for b in kls) / len(kls)
    by_samples = sum(n * sum(sum(v) / len(v) for v in b.values())
                     for n, b in zip(sizes, kls)) / sum(sizes)
    for other in (all_masknets, by_samples):
        assert abs(other - official) > 1e-4, (other, official)


def test_a_val_loader_without_the_teachers_modalities_is_refused_at_the_start():
    model = tiny_mst()
    runner = fake_runner(model, torch.optim.Adam(model.parameters()), max_iters=3,
                         val_batches=val_batches(keys=('a', )))
    with pytest.raises(ValueError, match=r"the runner's val_dataloader cannot feed the "
                       r"teachers: .*no modality \['b'\].*masknet_val_dataloader"):
        MSTStageHook([('masknet', 3)]).before_train(runner)
    # without a MaskNet stage ahead nothing is checked
    MSTStageHook([('student', 3)]).before_train(runner)
