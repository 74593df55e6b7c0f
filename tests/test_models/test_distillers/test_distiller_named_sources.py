"""ConfigurableDistiller's named models: ``from_model='teacher.<name>'`` / ``'student.<name>'``
next to ``from_student=True/False``, their errors, the teacher-cache helpers, GivenTensors.

Golden values are computed with plain Python arithmetic on the recorded tensors."""
import math

import pytest
import torch
from torch import nn

from mmkd.models.distillers import ConfigurableDistiller, GivenTensors

X = torch.tensor([[1.0, -2.0], [0.5, 0.25], [-1.0, 3.0]])


def linear(weights):
    model = nn.Sequential(nn.Linear(2, 3, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor(weights))
    return model


STUDENT = [[0.1, 0.2], [-0.3, 0.4], [0.5, -0.6]]
TEACHER_A = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
TEACHER_B = [[-0.5, 0.5], [0.2, -0.1], [0.3, 0.3]]


def rows(weights):
    """x W^T by hand."""
    return [[sum(w * v for w, v in zip(wrow, x)) for wrow in weights] for x in X.tolist()]


def softmax(row, tau):
    exps = [math.exp(v / tau) for v in row]
    return [e / sum(exps) for e in exps]


def kd(s_rows, t_rows, tau):
    """tau^2 mean_n KL(softmax(t/tau) || softmax(s/tau))."""
    kls = [sum(p * (math.log(p) - math.log(q))
               for p, q in zip(softmax(t, tau), softmax(s, tau))) for s, t in zip(s_rows, t_rows)]
    return tau**2 * sum(kls) / len(kls)


def rec():
    return dict(out=dict(type='ModuleOutputs', source='0'))


def two_teacher_distiller(**overrides):
    cfg = dict(
        student_recorders=rec(),
        named_teacher_recorders=dict(a=rec(), b=rec()),
        distill_losses=dict(loss_kd_a=dict(type='KLDivergence', tau=2.0),
                            loss_kd_b=dict(type='PerSampleKLDivergence', tau=4.0)),
        loss_forward_mappings=dict(
            loss_kd_a=dict(preds_S=dict(from_model='student', recorder='out'),
                           preds_T=dict(from_model='teacher.a', recorder='out')),
            loss_kd_b=dict(preds_S=dict(from_student=True, recorder='out'),
                           preds_T=dict(from_model='teacher.b', recorder='out'))))
    cfg.update(overrides)
    return ConfigurableDistiller(**cfg)


def run(distiller, models, names=None):
    """Forward every (model name -> module) while its recorders record; the losses."""
    for name, module in models.items():
        with distiller.manager(name):
            module(X)
    try:
        return distiller.compute_distill_losses(names=names)
    finally:
        distiller.reset()


def test_two_named_teachers_golden_values_and_order():
    d = two_teacher_distiller()
    s, a, b = linear(STUDENT), linear(TEACHER_A), linear(TEACHER_B)
    d.prepare_from_student(s)
    d.prepare_from_teacher(a, 'a')
    d.prepare_from_teacher(b, 'b')
    assert d.models == ['student', 'teacher', 'teacher.a', 'teacher.b']
    losses = run(d, {'student': s, 'teacher.a': a, 'teacher.b': b})
    assert list(losses) == ['distill.loss_kd_a', 'distill.loss_kd_b']
    assert losses['distill.loss_kd_a'].item() == pytest.approx(
        kd(rows(STUDENT), rows(TEACHER_A), 2.0), rel=1e-5)
    assert losses['distill.loss_kd_b'].item() == pytest.approx(
        kd(rows(STUDENT), rows(TEACHER_B), 4.0), rel=1e-5)
    # a subset, in the order asked for
    losses = run(d, {'student': s, 'teacher.a': a, 'teacher.b': b},
                 names=['loss_kd_b', 'loss_kd_a'])
    assert list(losses) == ['distill.loss_kd_b', 'distill.loss_kd_a']
    with pytest.raises(KeyError, match=r"no losses \['loss_x'\].*'loss_kd_a', 'loss_kd_b'"):
        d.compute_distill_losses(names=['loss_x'])


def test_named_students():
    d = ConfigurableDistiller(
        named_student_recorders=dict(cnn=rec(), vit=rec()),
        distill_losses=dict(loss_kd_cnn=dict(type='PerSampleKLDivergence', tau=1.0)),
        loss_forward_mappings=dict(loss_kd_cnn=dict(
            preds_S=dict(from_model='student.cnn', recorder='out'),
            preds_T=dict(from_model='student.vit', recorder='out'))))
    cnn, vit = linear(STUDENT), linear(TEACHER_B)
    d.prepare_from_student(cnn, 'cnn')
    d.prepare_from_student(vit, 'vit')
    losses = run(d, {'student.cnn': cnn, 'student.vit': vit})
    assert losses['distill.loss_kd_cnn'].item() == pytest.approx(
        kd(rows(STUDENT), rows(TEACHER_B), 1.0), rel=1e-5)
    assert d.teacher_sources() == []  # students are not cached


def test_from_model_teacher_is_from_student_false():
    def single(form):
        s_src = dict(from_student=True) if form == 'old' else dict(from_model='student')
        t_src = dict(from_student=False) if form == 'old' else dict(from_model='teacher')
        return ConfigurableDistiller(
            student_recorders=rec(), teacher_recorders=rec(),
            distill_losses=dict(loss_kd=dict(type='KLDivergence', tau=2.0)),
            loss_forward_mappings=dict(loss_kd=dict(preds_S=dict(s_src, recorder='out'),
                                                    preds_T=dict(t_src, recorder='out',
                                                                 record_idx=0))))
    values = {}
    for form in ('old', 'new'):
        d = single(form)
        s, t = linear(STUDENT), linear(TEACHER_A)
        d.prepare_from_student(s)
        d.prepare_from_teacher(t)
        assert d.teacher_sources() == ['out:0:']  # the cache keys of the single case
        assert d.teacher_record_needs() == {'out': 1}
        values[form] = run(d, {'student': s, 'teacher': t})['distill.loss_kd']
    assert values['old'].item() == values['new'].item() == pytest.approx(
        kd(rows(STUDENT), rows(TEACHER_A), 2.0), rel=1e-5)


def test_teacher_cache_helpers_with_named_teachers():
    d = two_teacher_distiller()
    a, b = linear(TEACHER_A), linear(TEACHER_B)
    d.prepare_from_student(linear(STUDENT))
    d.prepare_from_teacher(a, 'a')
    d.prepare_from_teacher(b, 'b')
    assert d.teacher_sources() == ['teacher.a/out:0:', 'teacher.b/out:0:']
    assert d.teacher_record_needs('teacher.a') == {'out': 1}
    assert d.teacher_record_needs() == {}
    with d.manager('teacher.a'):
        a(X)
    with d.manager('teacher.b'):
        b(X)
    cached = {k: v.detach().clone() for k, v in d.read_teacher_sources().items()}
    assert torch.equal(cached['teacher.b/out:0:'], b(X).detach())
    d.reset()
    d.inject_teacher_sources(cached)
    assert torch.equal(d.manager('teacher.a').get_recorder('out').get_record_data(0),
                       cached['teacher.a/out:0:'])
    with pytest.raises(KeyError, match="lacks \\['teacher.b/out:0:'\\]"):
        d.inject_teacher_sources({'teacher.a/out:0:': cached['teacher.a/out:0:']})


def test_given_tensors():
    d = ConfigurableDistiller(
        student_recorders=dict(logits=GivenTensors()),
        named_teacher_recorders=dict(t=dict(logits=dict(type='GivenTensors'))),
        distill_losses=dict(loss_kd=dict(type='PerSampleKLDivergence', tau=2.0)),
        loss_forward_mappings=dict(loss_kd=dict(
            preds_S=dict(from_model='student', recorder='logits'),
            preds_T=dict(from_model='teacher.t', recorder='logits'))))
    s, t = torch.tensor(rows(STUDENT)), torch.tensor(rows(TEACHER_A))
    d.give('student', 'logits', s)
    d.give('teacher.t', 'logits', t)
    value = d.compute_distill_losses()['distill.loss_kd']
    assert value.item() == pytest.approx(kd(rows(STUDENT), rows(TEACHER_A), 2.0), rel=1e-5)
    d.reset()
    with pytest.raises(RuntimeError, match='recorded nothing'):
        d.compute_distill_losses()
    with pytest.raises(KeyError, match="give='teacher.x'.*valid: \\['student', 'teacher', 'teacher.t'\\]"):
        d.give('teacher.x', 'logits', s)
    d2 = two_teacher_distiller()
    with pytest.raises(TypeError, match='ModuleOutputs, which records by itself'):
        d2.give('teacher.a', 'out', s)


def test_errors_name_the_key_and_the_valid_names():
    def mappings(preds_T):
        return dict(loss_kd_a=dict(preds_S=dict(from_model='student', recorder='out'),
                                   preds_T=preds_T),
                    loss_kd_b=dict(preds_S=dict(from_student=True, recorder='out'),
                                   preds_T=dict(from_model='teacher.b', recorder='out')))
    with pytest.raises(KeyError, match=r"loss_forward_mappings\.loss_kd_a\.preds_T\.from_model="
                                       r"'teacher\.c' is not a model of this distiller; valid: "
                                       r"\['student', 'teacher', 'teacher\.a', 'teacher\.b'\]"):
        two_teacher_distiller(loss_forward_mappings=mappings(
            dict(from_model='teacher.c', recorder='out')))
    with pytest.raises(KeyError, match=r"loss_kd_a\.preds_T\.recorder='feat' is not declared in "
                                       r"named_teacher_recorders\.a; declared: \['out'\]"):
        two_teacher_distiller(loss_forward_mappings=mappings(
            dict(from_model='teacher.a', recorder='feat')))
    with pytest.raises(KeyError, match="loss_kd_a.preds_T: give 'from_student' or 'from_model'"):
        two_teacher_distiller(loss_forward_mappings=mappings(
            dict(from_model='teacher.a', from_student=False, recorder='out')))
    with pytest.raises(KeyError, match="loss_kd_a.preds_T needs 'from_student' \\(or 'from_model'\\)"):
        two_teacher_distiller(loss_forward_mappings=mappings(dict(recorder='out')))
    with pytest.raises(KeyError, match="named_teacher_recorders: 'a.b' is not a valid teacher name"):
        two_teacher_distiller(named_teacher_recorders={'a.b': rec()})
    with pytest.raises(TypeError, match='named_student_recorders must be a dict'):
        two_teacher_distiller(named_student_recorders=['cnn'])
    d = two_teacher_distiller()
    with pytest.raises(KeyError, match="prepare_from_teacher='teacher.z'"):
        d.prepare_from_teacher(linear(TEACHER_A), 'z')
    # the error names the config key of the recorder (review finding)
    with pytest.raises(ValueError, match=r'named_teacher_recorders\.a\.out: '):
        d.prepare_from_teacher(nn.Sequential(), 'a')  # no module '0'


class PartsLoss(nn.Module):
    """sum and max of (s - t); both, or only the sum, as ``parts`` says."""

    def forward(self, s, t, parts):
        diff = s - t.detach()
        return dict(sum=diff.sum(), max=diff.max()) if parts else diff.sum()


def test_constant_values_and_losses_with_parts():
    def build(parts):
        return ConfigurableDistiller(
            student_recorders=dict(x=GivenTensors()), teacher_recorders=dict(x=GivenTensors()),
            distill_losses=dict(loss_diff=PartsLoss()),
            loss_forward_mappings=dict(loss_diff=dict(
                s=dict(from_student=True, recorder='x'), t=dict(from_student=False, recorder='x'),
                parts=dict(value=parts))))
    s, t = torch.tensor([1.0, 4.0, -2.0]), torch.tensor([0.5, 1.0, 1.0])
    d = build(True)
    d.give('student', 'x', s)
    d.give('teacher', 'x', t)
    d.loss_weight_scale = 0.5
    losses = d.compute_distill_losses()
    assert list(losses) == ['distill.loss_diff_sum', 'distill.loss_diff_max']
    assert losses['distill.loss_diff_sum'].item() == pytest.approx(0.5 * (0.5 + 3.0 - 3.0))
    assert losses['distill.loss_diff_max'].item() == pytest.approx(0.5 * 3.0)
    assert d.teacher_sources() == ['x:0:']
    d = build(False)
    d.give('student', 'x', s)
    d.give('teacher', 'x', t)
    assert list(d.compute_distill_losses()) == ['distill.loss_diff']
    with pytest.raises(KeyError, match="loss_diff.parts: 'value' \\(a constant\\) stands alone"):
        ConfigurableDistiller(
            student_recorders=dict(x=GivenTensors()), teacher_recorders=dict(x=GivenTensors()),
            distill_losses=dict(loss_diff=PartsLoss()),
            loss_forward_mappings=dict(loss_diff=dict(
                s=dict(from_student=True, recorder='x'), t=dict(from_student=False, recorder='x'),
                parts=dict(value=True, recorder='x'))))
