import copy

import pytest
import torch
from mmengine.optim import OptimWrapper

from mmkd.registry import MODELS

from .helpers import batch, logit_distiller, tiny_classifier


def build(distiller=None, **kwargs):
    return MODELS.build(dict(
        type='SingleTeacherDistill',
        architecture=tiny_classifier(width=4),
        teacher=tiny_classifier(width=8),
        distiller=distiller or logit_distiller(),
        **kwargs))


@pytest.mark.filterwarnings('ignore:SingleTeacherDistill')
def test_teacher_frozen_hidden_and_unchanged_by_training():
    torch.manual_seed(0)
    model = build()
    teacher = model.teacher
    before = copy.deepcopy(teacher.state_dict())
    assert not any(p.requires_grad for p in teacher.parameters())
    # The teacher is not a submodule: no parameter, buffer or state-dict key.
    params = {id(p) for p in model.parameters()}
    assert not any(id(p) in params for p in teacher.parameters())
    assert not any(k.startswith('teacher') for k in model.state_dict())
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9))
    model.train()
    assert not teacher.training  # model.train() leaves the teacher in eval mode
    student_before = copy.deepcopy(model.architecture.state_dict())
    for step in range(3):
        log_vars = model.train_step(batch(seed=step), optim)
    assert 'distill.loss_kd' in log_vars and 'loss' in log_vars
    after = teacher.state_dict()
    for key, value in before.items():
        assert torch.equal(value, after[key]), f'teacher {key} changed'  # incl. BN stats
    changed = [k for k, v in model.architecture.state_dict().items()
               if not torch.equal(v, student_before[k])]
    assert changed, 'the student did not train'
    assert all(p.grad is None for p in teacher.parameters())


@pytest.mark.filterwarnings('ignore:SingleTeacherDistill')
def test_teacher_records_hold_no_autograd_graph():
    model = build()
    model.train()
    seen = {}
    original = model.distiller.compute_distill_losses

    def spy(data_samples=None):
        rec = model.distiller.teacher_recorders.get_recorder('logits')
        seen['teacher'] = rec.get_record_data()
        return original(data_samples)

    model.distiller.compute_distill_losses = spy
    data = model.data_preprocessor(batch(), True)
    losses = model(**data, mode='loss')
    assert seen['teacher'].grad_fn is None and not seen['teacher'].requires_grad
    assert losses['distill.loss_kd'].requires_grad


@pytest.mark.filterwarnings('ignore:SingleTeacherDistill')
def test_predict_and_tensor_are_the_students():
    model = build()
    model.eval()
    data = model.data_preprocessor(batch(), False)
    out = model(**data, mode='tensor')
    ref = model.architecture(data['inputs'], mode='tensor')
    assert torch.equal(out, ref)
    preds = model(**data, mode='predict')
    assert len(preds) == 4 and 'pred_label' in preds[0]


@pytest.mark.filterwarnings('ignore:SingleTeacherDistill')
def test_distillation_stopped_skips_teacher():
    model = build()
    model.distillation_stopped.fill_(True)
    data = model.data_preprocessor(batch(), True)
    calls = []
    handle = model.teacher.register_forward_hook(lambda *a: calls.append(1))
    losses = model(**data, mode='loss')
    handle.remove()
    assert calls == [] and not any(k.startswith('distill.') for k in losses)
    assert 'distillation_stopped' in model.state_dict()


@pytest.mark.filterwarnings('ignore:SingleTeacherDistill')
def test_teacher_data_preprocessor_gets_same_raw_batch():
    model = build(teacher_data_preprocessor=dict(
        type='ClsDataPreprocessor', num_classes=4, mean=[128.0] * 3, std=[1.0] * 3))
    raw = batch()
    data = model.data_preprocessor(raw, True)
    expected = torch.stack(raw['inputs']).float() - 128.0
    assert torch.allclose(data['teacher_inputs'], expected)
    assert torch.allclose(data['inputs'], torch.stack(raw['inputs']).float() / 255.0)
    losses = model(**data, mode='loss')
    assert torch.isfinite(losses['distill.loss_kd'])


@pytest.mark.filterwarnings('ignore:SingleTeacherDistill')
def test_cfg_path_and_teacher_ckpt(tmp_path, repo_root):
    import os.path as osp
    teacher, _ = __import__('mmkd.utils', fromlist=['build_task_model']).build_task_model(
        tiny_classifier(width=8))
    ckpt = tmp_path / 'teacher.pth'
    torch.save({'state_dict': teacher.state_dict(), 'meta': {}}, ckpt)
    model = MODELS.build(dict(
        type='SingleTeacherDistill',
        architecture=dict(cfg_path=osp.join(repo_root, 'configs/_base_/models/digits_resnet_student.py')),
        teacher=tiny_classifier(width=8),
        teacher_ckpt=str(ckpt),
        distiller=dict(type='ConfigurableDistiller')))
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, model.teacher.state_dict()[k])
    assert type(model.architecture).__name__ == 'ImageClassifier'
