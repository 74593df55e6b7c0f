"""MultiTeacherDistill: hidden frozen teachers, modalities, MaskNet hooks, stages."""
import copy
import re

import pytest
import torch
from mmengine.optim import OptimWrapper
from mmpretrain.structures import DataSample

from mmkd.registry import MODELS

from .helpers import tiny_classifier

pytestmark = pytest.mark.filterwarnings('ignore:MultiTeacherDistill')
NUM_CLASSES = 4


def mm_teacher(keys=('img', 'audio')):
    encoders = dict(img=dict(type='ConvEncoder2d', in_channels=3, width=4, out_dim=8),
                    audio=dict(type='ConvEncoder1d', in_channels=1, width=4, out_dim=8))
    return dict(
        type='mmkd.MultiModalClassifier',
        encoders={k: encoders[k] for k in keys},
        num_classes=NUM_CLASSES, hidden_dim=8,
        data_preprocessor=dict(type='mmkd.MultiModalDataPreprocessor', modalities=dict(
            img=dict(mean=[0.0] * 3, std=[255.0] * 3), audio=dict())))


def teachers_cfg(masks=True):
    mm = dict(model=mm_teacher(), input_key=['img', 'audio'])
    audio = dict(model=mm_teacher(('audio', )), input_key=['audio'])
    if masks:
        mm['masknets'] = [dict(layer='fusion', type='MaskNet1d', feat_dim=16, num_heads=2),
                          dict(layer='fc1', type='MaskNet1d', feat_dim=8, num_heads=2)]
        audio['masknets'] = [dict(layer='fc1', type='MaskNet1d', feat_dim=8, num_heads=2)]
    return dict(mm=mm, audio=audio)


def build(combiner=None, masks=True, **kwargs):
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='MultiTeacherDistill',
        architecture=tiny_classifier(width=4, num_classes=NUM_CLASSES),
        teachers=kwargs.pop('teachers', None) or teachers_cfg(masks),
        combiner=combiner or dict(type='MSTRouter', num_classes=NUM_CLASSES, topk=1),
        student_logits='head.fc',
        student_input_key='img',
        **kwargs))


def mm_batch(n=6, seed=0, unlabelled=()):
    g = torch.Generator().manual_seed(seed)
    img = [torch.randint(0, 256, (3, 16, 16), generator=g, dtype=torch.uint8) for _ in range(n)]
    audio = [torch.randn(1, 32, generator=g) for _ in range(n)]
    samples = [DataSample().set_gt_label(-100 if i in unlabelled else i % NUM_CLASSES)
               for i in range(n)]
    return dict(inputs=dict(img=img, audio=audio), data_samples=samples)


def snapshot(module):
    return copy.deepcopy(module.state_dict())


def changed(before, module):
    after = module.state_dict()
    return [k for k, v in before.items() if not torch.equal(v, after[k])]


def steps(model, n=2, lr=0.1):
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9))
    model.train()
    log = None
    for i in range(n):
        log = model.train_step(mm_batch(seed=i, unlabelled=(1, 3)), optim)
    return log


def test_ways_teachers_hidden_frozen_and_out_of_checkpoints():
    model = build()
    assert [w.name for w in model.ways] == ['mm@fusion', 'mm@fc1', 'audio@fc1']
    assert model.combiner.way_names == ['mm@fusion', 'mm@fc1', 'audio@fc1']
    params = {id(p) for p in model.parameters()}
    for teacher in model.teachers.values():
        assert not any(p.requires_grad for p in teacher.parameters())
        assert not any(id(p) in params for p in teacher.parameters())
    keys = list(model.state_dict())
    assert not any(k.startswith('teacher') for k in keys)
    assert any(k.startswith('masknets.mm_0.') for k in keys)
    assert any(k.startswith('combiner.gate.') for k in keys)
    model.train()
    assert not any(t.training for t in model.teachers.values())


def test_student_stage_trains_student_and_router_only():
    model = build(stage='student')
    teachers = {n: snapshot(t) for n, t in model.teachers.items()}
    masknets, student, gate = (snapshot(model.masknets), snapshot(model.architecture),
                               snapshot(model.combiner.gate))
    log = steps(model)
    for key in ('distill.loss_kd', 'distill.loss_lb', 'distill.route.mm@fusion', 'loss'):
        assert key in log
    fractions = sum(log[f'distill.route.{w.name}'] for w in model.ways)
    assert fractions == pytest.approx(1.0)
    for name, before in teachers.items():
        assert not changed(before, model.teachers[name]), f'teacher {name} changed'
    assert not changed(masknets, model.masknets)
    assert changed(student, model.architecture) and changed(gate, model.combiner.gate)
    assert all(p.grad is None for t in model.teachers.values() for p in t.parameters())


def test_masknet_stage_trains_masknets_only():
    model = build(stage='masknet')
    model.train()
    assert model.masknets.training and not model.architecture.training
    teachers = {n: snapshot(t) for n, t in model.teachers.items()}
    masknets, student, gate = (snapshot(model.masknets), snapshot(model.architecture),
                               snapshot(model.combiner.gate))
    log = steps(model)
    assert {k for k in log if k.startswith('distill.')} == {
        'distill.loss_masknet_mm@fusion', 'distill.loss_masknet_mm@fc1',
        'distill.loss_masknet_audio@fc1'}
    for name, before in teachers.items():
        assert not changed(before, model.teachers[name]), f'teacher {name} changed'
    assert not changed(student, model.architecture)  # incl. BN statistics (eval mode)
    assert not changed(gate, model.combiner.gate)
    assert set(k.split('.')[0] for k in changed(masknets, model.masknets)) == {
        'mm_0', 'mm_1', 'audio_0'}


def test_masknet_loss_is_kl_from_student_to_masked_teacher():
    model = build(stage='masknet')
    model.eval()
    data = model.data_preprocessor(mm_batch(), True)
    losses = model(**data, mode='loss')
    s_logits = model.architecture(data['inputs'], mode='tensor')
    model._active_mask = 'mm_1'
    t_logits = model.teachers['mm'](data['teacher_inputs']['mm'], mode='tensor')
    model._active_mask = None
    tau = 4.0
    p_s = torch.softmax(s_logits / tau, 1)
    expected = tau**2 * (p_s * (p_s.log() - torch.log_softmax(t_logits / tau, 1))).sum(1).mean()
    assert torch.allclose(losses['distill.loss_masknet_mm@fc1'], expected, atol=1e-5)


@pytest.mark.parametrize('stage,broken', [('masknet', ('mm_0', )),
                                          ('student', ('mm_0', 'mm_1', 'audio_0'))])
def test_non_finite_loss_names_the_loss(stage, broken):
    """Diverged MaskNets: only the losses that read their ways are named."""
    model = build(stage=stage)
    model.train()
    data = model.data_preprocessor(mm_batch(), True)
    with torch.no_grad():
        for key in broken:
            for p in model.masknets[key].parameters():
                p.fill_(float('nan'))
    with pytest.raises(FloatingPointError) as err:
        model(**data, mode='loss')
    named = re.findall(r'([\w.@]+)=', str(err.value).split(': ', 1)[1])
    if stage == 'masknet':  # only way 'mm@fusion' is broken
        assert named == ['distill.loss_masknet_mm@fusion'], str(err.value)
    else:  # every way is broken: the routed KD loss is NaN, the student's CE is not
        assert named == ['distill.loss_kd'], str(err.value)
    assert 'iteration' in str(err.value)
    off = build(stage=stage, check_finite=False)
    off.load_state_dict(model.state_dict())
    off.train()
    assert any(not torch.isfinite(v).all() for v in off(**data, mode='loss').values())


def test_mask_hook_acts_only_for_its_way():
    model = build()
    model.eval()
    data = model.data_preprocessor(mm_batch(), True)
    t_inputs = data['teacher_inputs']
    teacher = model.teachers['mm']
    plain = teacher(t_inputs['mm'], mode='tensor')
    ways = {w.name: w for w in model.ways}
    fused = model._way_logits(ways['mm@fusion'], t_inputs, None)
    assert not torch.allclose(fused, plain)
    assert torch.equal(teacher(t_inputs['mm'], mode='tensor'), plain)  # hook inactive again
    # With the masked layer's output captured, the way's logits are the teacher's head
    # applied to masknet(output).
    feats = teacher.extract_feat(t_inputs['mm'])
    expected = teacher.fc2(teacher.act(teacher.fc1(model.masknets['mm_0'](feats))))
    assert torch.allclose(fused, expected, atol=1e-6)


def test_cotrain_stage_with_frozen_teachers():
    model = build(stage='cotrain')
    teachers = {n: snapshot(t) for n, t in model.teachers.items()}
    student = snapshot(model.architecture)
    log = steps(model)
    assert 'distill.loss_kd_from_mm' in log and 'distill.loss_kd_from_audio' in log
    assert changed(student, model.architecture)
    for name, before in teachers.items():
        assert not changed(before, model.teachers[name])


def test_cotrain_teachers_option_trains_teachers_then_freezes_them():
    with pytest.raises(KeyError, match='teachers.mm.logits_source is required'):
        build(stage='cotrain', cotrain_teachers=True)
    t = teachers_cfg()
    t['mm']['logits_source'] = t['audio']['logits_source'] = 'fc2'
    model = build(stage='cotrain', cotrain_teachers=True, teachers=t)
    assert any(k.startswith('teacher_models.mm.') for k in model.state_dict())
    before = {n: snapshot(t) for n, t in model.teachers.items()}
    model.train()
    assert all(t.training for t in model.teachers.values())
    log = steps(model)
    for key in ('mm.loss_cls', 'distill.loss_kd_from_mm',
                'distill.loss_kd_mm_from_student', 'distill.loss_kd_audio_from_mm'):
        assert key in log
    for name in before:
        assert changed(before[name], model.teachers[name]), f'teacher {name} did not train'
    model.set_stage('student')
    assert not any(p.requires_grad for t in model.teachers.values() for p in t.parameters())
    assert not any(t.training for t in model.teachers.values())
    frozen = {n: snapshot(t) for n, t in model.teachers.items()}
    steps(model)
    for name in frozen:
        assert not changed(frozen[name], model.teachers[name])


def test_average_and_fixed_weight_combiners():
    tau = 4.0
    model = build(combiner=dict(type='FixedWeightTeachers', weights=dict(mm=3.0, audio=1.0)),
                  masks=False)
    assert [w.name for w in model.ways] == ['mm', 'audio']
    model.eval()
    data = model.data_preprocessor(mm_batch(), True)
    losses = model(**data, mode='loss')
    s = model.architecture(data['inputs'], mode='tensor')
    t = [model.teachers[n](data['teacher_inputs'][n], mode='tensor') for n in ('mm', 'audio')]
    p_t = 0.75 * torch.softmax(t[0] / tau, 1) + 0.25 * torch.softmax(t[1] / tau, 1)
    expected = tau**2 * (p_t * (p_t.log() - torch.log_softmax(s / tau, 1))).sum(1).mean()
    assert torch.allclose(losses['distill.loss_kd'], expected, atol=1e-5)
    log = steps(build(combiner=dict(type='AverageTeachers'), masks=False))
    assert 'distill.loss_kd' in log and 'distill.loss_lb' not in log


def test_predict_and_tensor_use_the_students_modality():
    model = build()
    model.eval()
    raw = mm_batch()
    data = model.data_preprocessor(raw, False)
    assert isinstance(data['inputs'], torch.Tensor) and 'teacher_inputs' not in data
    preds = model(**data, mode='predict')
    assert len(preds) == 6 and 'pred_label' in preds[0]
    expected = torch.stack(raw['inputs']['img']).float() / 255.0
    assert torch.allclose(data['inputs'], expected)
    ref = model.architecture(expected, mode='tensor')
    assert torch.allclose(model(data['inputs'], mode='tensor'), ref)
    # an image-only batch (plain tensors) also works in evaluation
    plain = model.data_preprocessor(dict(inputs=raw['inputs']['img'],
                                         data_samples=raw['data_samples']), False)
    assert torch.allclose(plain['inputs'], expected)


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match=r"teachers.mm.masknets\[0\].layer='fuse'.*fusion"):
        t = teachers_cfg()
        t['mm']['masknets'][0]['layer'] = 'fuse'
        build(teachers=t)
    with pytest.raises(KeyError, match=r"teachers.mm: unknown keys \['ckpt_path'\]"):
        t = teachers_cfg()
        t['mm']['ckpt_path'] = 'x.pth'
        build(teachers=t)
    with pytest.raises(ValueError, match=r"student_logits.*'head.fc'"):
        MODELS.build(dict(type='MultiTeacherDistill', architecture=tiny_classifier(width=4),
                          teachers=teachers_cfg(), student_logits='head.fcc',
                          combiner=dict(type='AverageTeachers')))
    with pytest.raises(ValueError, match="stage='warmup' is not valid"):
        build(stage='warmup')
    with pytest.raises(ValueError, match='topk=4 but there are only 3 teachers'):
        build(combiner=dict(type='MSTRouter', num_classes=NUM_CLASSES, topk=4))
    with pytest.raises(ValueError, match="stage='masknet' but no teacher has masknets"):
        build(masks=False, stage='masknet')
    with pytest.raises(KeyError, match=r"unknown teachers \['video'\]"):
        build(combiner=dict(type='FixedWeightTeachers', weights=dict(mm=1, video=1)),
              masks=False)
    t = teachers_cfg()
    t['audio']['input_key'] = ['sound']
    model = build(teachers=t)
    with pytest.raises(KeyError, match=r"teachers.audio.input_key=\['sound'\].*\['audio', 'img'\]"):
        model.data_preprocessor(mm_batch(), True)


def test_teacher_ckpt_is_loaded(tmp_path):
    from mmkd.utils import build_task_model
    torch.manual_seed(1)
    teacher, _ = build_task_model(mm_teacher(('audio', )))
    path = tmp_path / 'audio.pth'
    torch.save({'state_dict': teacher.state_dict(), 'meta': {}}, path)
    t = teachers_cfg()
    t['audio']['ckpt'] = str(path)
    model = build(teachers=t)
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, model.teachers['audio'].state_dict()[k])


def test_to_and_device_reach_the_hidden_teachers_and_their_preprocessors():
    """.to()/.cuda() must move the hidden teachers and tell their preprocessors the
    device (checked without a GPU: dtype moves, and the device bookkeeping)."""
    model = build()
    model.double()
    assert all(p.dtype == torch.float64 for t in model.teachers.values() for p in t.parameters())
    assert all(p.dtype == torch.float64 for p in model.masknets.parameters())
    model._set_device(torch.device('cuda', 0))  # what BaseModel.cuda()/.to() call
    assert model.data_preprocessor.student._device == torch.device('cuda', 0)
    for preprocessor, _ in model.data_preprocessor._teachers[0].values():
        assert preprocessor._device == torch.device('cuda', 0)


def test_kl_terms_are_losses_of_the_distiller():
    """'cotrain' and 'masknet' terms are PerSampleKLDivergence losses of self.distiller,
    reading the models 'student' and 'teacher.<name>' (issue 20)."""
    model = build(stage='cotrain')
    d = model.distiller
    assert d.models == ['student', 'teacher', 'teacher.mm', 'teacher.audio']
    assert list(d.distill_losses) == ['loss_kd_from_mm', 'loss_kd_from_audio',
                                      'loss_masknet_mm@fusion', 'loss_masknet_mm@fc1',
                                      'loss_masknet_audio@fc1']
    assert {type(v).__name__ for v in d.distill_losses.values()} == {'PerSampleKLDivergence'}
    assert d.distill_losses['loss_kd_from_mm'].detach_target
    assert d.loss_forward_mappings['loss_masknet_mm@fc1'] == dict(
        preds_S=dict(from_model='teacher.mm', recorder='mm@fc1'),
        preds_T=dict(from_model='student', recorder='logits'))
    assert not list(d.parameters()) and not d.state_dict()  # nothing new in checkpoints
    t = teachers_cfg()
    t['mm']['logits_source'] = t['audio']['logits_source'] = 'fc2'
    co = build(stage='cotrain', cotrain_teachers=True, teachers=t).distiller
    assert list(co.distill_losses)[:6] == [
        'loss_kd_from_mm', 'loss_kd_from_audio', 'loss_kd_mm_from_student',
        'loss_kd_mm_from_audio', 'loss_kd_audio_from_student', 'loss_kd_audio_from_mm']
    assert not any(co.distill_losses[k].detach_target for k in list(co.distill_losses)[:6])
    with pytest.raises(ValueError, match='cotrain_tau=0'):
        build(cotrain_tau=0)
    t = teachers_cfg()
    t['mm']['masknets'][0]['name'] = 'logits'
    with pytest.raises(ValueError, match="teachers.mm.masknets: the way name 'logits' is taken"):
        build(teachers=t)
