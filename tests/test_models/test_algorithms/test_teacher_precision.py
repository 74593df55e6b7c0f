"""Teacher in bf16/fp16 (autocast or cast) and the student under CPU autocast (--amp)."""
import math

import pytest
import torch
from mmengine.optim import OptimWrapper
from torch import nn

from mmkd.engine import CPUAmpOptimWrapper
from mmkd.models.teachers.precision import TeacherPrecision
from mmkd.registry import MODELS

from .helpers import batch, logit_distiller, tiny_classifier

pytestmark = pytest.mark.filterwarnings('ignore:SingleTeacherDistill')


def build(**kwargs):
    torch.manual_seed(0)
    return MODELS.build(dict(type='SingleTeacherDistill', architecture=tiny_classifier(width=4),
                             teacher=tiny_classifier(width=8), distiller=logit_distiller(),
                             **kwargs))


def spy_losses(model):
    """Run one loss forward; return (losses, recorded teacher logits, their dtype at the loss)."""
    seen = {}
    loss_module = model.distiller.distill_losses['loss_kd']
    original_forward = loss_module.forward

    def forward(preds_S, preds_T):
        seen['S'], seen['T'] = preds_S.dtype, preds_T.dtype
        seen['autocast'] = torch.is_autocast_enabled('cpu')
        return original_forward(preds_S, preds_T)

    loss_module.forward = forward
    raw = model.distiller.teacher_recorders.get_recorder('logits')
    original_reset = model.distiller.teacher_recorders.reset

    def reset():
        seen['raw_T'] = raw.get_record_data().dtype
        original_reset()

    model.distiller.teacher_recorders.reset = reset
    data = model.data_preprocessor(batch(), True)
    losses = model(**data, mode='loss')
    return losses, seen


@pytest.mark.parametrize('precision,dtype', [('bf16', torch.bfloat16), ('fp16', torch.float16)])
@pytest.mark.parametrize('mode', ['autocast', 'cast'])
def test_reduced_teacher_records_low_precision_losses_fp32(precision, dtype, mode):
    ref = build()
    ref_losses, ref_seen = spy_losses(ref)
    model = build(teacher_precision=precision, teacher_precision_mode=mode)
    # Same seed: same student and same fp32 teacher weights before any cast.
    losses, seen = spy_losses(model)
    assert ref_seen['raw_T'] == torch.float32
    assert seen['raw_T'] == dtype, 'the teacher forward did not run in reduced precision'
    assert seen['S'] == seen['T'] == torch.float32 and not seen['autocast']
    assert losses['distill.loss_kd'].dtype == torch.float32
    # Only the teacher forward is approximate: the loss stays close to the fp32 one.
    rel = abs(losses['distill.loss_kd'].item() - ref_losses['distill.loss_kd'].item())
    assert rel <= 0.05 * abs(ref_losses['distill.loss_kd'].item()) + 1e-3
    params = list(model.teacher.parameters())
    if mode == 'cast':
        assert all(p.dtype == dtype for p in params)
        model.float()  # the runner may call .float(): the teacher stays cast
        assert all(p.dtype == dtype for p in model.teacher.parameters())
    else:
        assert all(p.dtype == torch.float32 for p in params)
    assert all(p.dtype == torch.float32 for p in model.architecture.parameters())
    assert not any(k.startswith('teacher') for k in model.state_dict())


def test_cast_teacher_trains_student_in_fp32():
    model = build(teacher_precision='bf16', teacher_precision_mode='cast')
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    model.train()
    before = [p.detach().clone() for p in model.architecture.parameters()]
    log_vars = model.train_step(batch(), optim)
    assert math.isfinite(float(log_vars['distill.loss_kd']))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.architecture.parameters()))
    assert all(p.grad is None for p in model.teacher.parameters())


@pytest.mark.parametrize('kwargs,key', [
    (dict(teacher_precision='int8'), "teacher_precision='int8'"),
    (dict(teacher_precision='bf16', teacher_precision_mode='half'), "teacher_precision_mode='half'"),
])
def test_bad_precision_is_named(kwargs, key):
    with pytest.raises(ValueError, match=key):
        build(**kwargs)


def test_cpu_amp_wrapper_autocasts_student_losses_stay_fp32():
    model = build()
    optim = CPUAmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    model.train()
    seen = {}
    head = model.architecture.head.fc

    def hook(module, args, output):
        seen.setdefault('student_logits', output.dtype)

    head.register_forward_hook(hook)
    log_vars = model.train_step(batch(), optim)
    assert seen['student_logits'] == torch.bfloat16  # the student ran under autocast
    assert math.isfinite(float(log_vars['distill.loss_kd']))
    assert all(p.dtype == torch.float32 for p in model.parameters())
    with pytest.raises(ValueError, match='optim_wrapper.dtype'):
        CPUAmpOptimWrapper(dtype='int8', optimizer=torch.optim.SGD(model.parameters(), lr=0.1))


def test_context_nests_inside_student_autocast():
    """In 'cast' mode an enclosing --amp autocast is switched off for the teacher."""
    prec = TeacherPrecision('bf16', 'cast')
    with torch.autocast('cpu', dtype=torch.bfloat16), prec.context('cpu'):
        assert not torch.is_autocast_enabled('cpu')
    with TeacherPrecision('fp16', 'autocast').context('cpu'):
        assert torch.get_autocast_dtype('cpu') == torch.float16


def test_hidden_teacher_follows_the_batch_device():
    # FSDP moves only the modules it wraps; a teacher outside the module tree is moved
    # to the batch's device by the algorithm (here CPU -> meta, the one other device a
    # CPU machine has), and 'cast' mode is re-applied after the move.
    teacher = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    precision = TeacherPrecision('bf16', mode='cast')
    assert precision.follow_device(teacher, torch.device('meta')) is teacher
    assert {p.device.type for p in teacher.parameters()} == {'meta'}
    assert teacher[1].running_mean.device.type == 'meta'
    assert {p.dtype for p in teacher.parameters()} == {torch.bfloat16}
    # already on the device: nothing is moved or cast
    fp32 = nn.Linear(3, 2)
    before = fp32.weight
    TeacherPrecision().follow_device(fp32, 'cpu')
    assert fp32.weight is before and fp32.weight.dtype == torch.float32
