"""Every config mistake names the key, the bad value and the valid choices."""
import pytest
import torch

from mmkd.registry import MODELS

from .helpers import batch, logit_distiller, tiny_classifier

pytestmark = pytest.mark.filterwarnings('ignore:SingleTeacherDistill')


def build(distiller):
    return MODELS.build(dict(type='SingleTeacherDistill', architecture=tiny_classifier(width=4),
                             teacher=tiny_classifier(width=8), distiller=distiller))


def test_module_path_that_does_not_exist_suggests_close_names():
    cfg = logit_distiller()
    cfg['student_recorders']['logits']['source'] = 'head.fcc'
    with pytest.raises(ValueError) as err:
        build(cfg)
    msg = str(err.value)
    assert 'student_recorders.logits' in msg and "'head.fcc'" in msg and "'head.fc'" in msg


def test_recorder_not_declared():
    cfg = logit_distiller()
    cfg['loss_forward_mappings']['loss_kd']['preds_T']['recorder'] = 'feats'
    with pytest.raises(KeyError) as err:
        build(cfg)
    msg = str(err.value)
    assert 'loss_forward_mappings.loss_kd.preds_T.recorder' in msg and "'feats'" in msg
    assert "declared: ['logits']" in msg


def test_loss_argument_the_loss_does_not_take():
    cfg = logit_distiller()
    mapping = cfg['loss_forward_mappings']['loss_kd']
    mapping['logits_S'] = mapping.pop('preds_S')
    with pytest.raises(TypeError) as err:
        build(cfg)
    msg = str(err.value)
    assert 'loss_forward_mappings.loss_kd.logits_S' in msg and 'preds_S' in msg


def test_loss_constructor_argument_the_loss_does_not_take():
    cfg = logit_distiller(loss=dict(type='KLDivergence', temperature=4))
    with pytest.raises(TypeError) as err:
        build(cfg)
    assert 'distill_losses.loss_kd' in str(err.value) and 'tau' in str(err.value)


def test_feature_shape_mismatch_without_connector():
    cfg = dict(
        type='ConfigurableDistiller',
        student_recorders=dict(feat=dict(type='ModuleOutputs', source='neck')),
        teacher_recorders=dict(feat=dict(type='ModuleOutputs', source='neck')),
        distill_losses=dict(loss_fit=dict(type='L2Loss')),
        loss_forward_mappings=dict(loss_fit=dict(
            s_feature=dict(from_student=True, recorder='feat', data_idx=0),
            t_feature=dict(from_student=False, recorder='feat', data_idx=0))))
    model = build(cfg)
    data = model.data_preprocessor(batch(), True)
    with pytest.raises(ValueError) as err:
        model(**data, mode='loss')
    msg = str(err.value)
    assert 'loss_forward_mappings.loss_fit' in msg and '(4, 32)' in msg and '(4, 64)' in msg
    assert 'ConvConnector' in msg or 'connector' in msg
    # ... and with the connector it trains.
    cfg['connectors'] = dict(fit=dict(type='LinearConnector', in_features=32, out_features=64))
    cfg['loss_forward_mappings']['loss_fit']['s_feature']['connector'] = 'fit'
    model = build(cfg)
    losses = model(**model.data_preprocessor(batch(), True), mode='loss')
    assert losses['distill.loss_fit'].requires_grad


def test_undeclared_connector_and_unknown_mapping_key():
    cfg = logit_distiller()
    cfg['loss_forward_mappings']['loss_kd']['preds_S']['connector'] = 'proj'
    with pytest.raises(KeyError, match="connector='proj' is not declared"):
        build(cfg)
    cfg = logit_distiller()
    cfg['loss_forward_mappings']['loss_kd']['preds_S']['index'] = 0
    with pytest.raises(KeyError, match='unknown keys'):
        build(cfg)


def test_unknown_loss_type_and_missing_mapping():
    with pytest.raises(KeyError, match='not registered'):
        build(logit_distiller(loss=dict(type='KLDivergenceX')))
    cfg = logit_distiller()
    cfg['loss_forward_mappings'] = {}
    with pytest.raises(KeyError, match='has no entry in loss_forward_mappings'):
        build(cfg)


def test_bad_architecture_and_teacher_ckpt(tmp_path):
    with pytest.raises(FileNotFoundError, match='architecture.cfg_path'):
        MODELS.build(dict(type='SingleTeacherDistill', architecture=dict(cfg_path='nope.py'),
                          teacher=tiny_classifier(), distiller=logit_distiller()))
    with pytest.raises(FileNotFoundError, match='teacher_ckpt'):
        MODELS.build(dict(type='SingleTeacherDistill', architecture=tiny_classifier(),
                          teacher=tiny_classifier(), teacher_ckpt=str(tmp_path / 'missing.pth'),
                          distiller=logit_distiller()))
    bad = tmp_path / 'other.pth'
    torch.save({'state_dict': {'foo.weight': torch.zeros(1)}}, bad)
    with pytest.raises(RuntimeError, match='does not match the teacher'):
        MODELS.build(dict(type='SingleTeacherDistill', architecture=tiny_classifier(),
                          teacher=tiny_classifier(), teacher_ckpt=str(bad),
                          distiller=logit_distiller()))
    with pytest.raises(ValueError, match='teacher_forward_mode'):
        MODELS.build(dict(type='SingleTeacherDistill', architecture=tiny_classifier(),
                          teacher=tiny_classifier(), teacher_forward_mode='train',
                          distiller=logit_distiller()))


def test_teacher_ckpt_strict_flag_and_key_lists(tmp_path):
    from mmkd.utils import build_task_model
    teacher, _ = build_task_model(tiny_classifier(width=8))
    state = teacher.state_dict()
    state.pop('head.fc.bias')
    state['extra.weight'] = torch.zeros(1)
    path = tmp_path / 'partial.pth'
    torch.save({'state_dict': state}, path)
    kwargs = dict(type='SingleTeacherDistill', architecture=tiny_classifier(width=4),
                  teacher=tiny_classifier(width=8), teacher_ckpt=str(path),
                  distiller=logit_distiller())
    with pytest.raises(RuntimeError) as err:
        MODELS.build(kwargs)
    msg = str(err.value)
    assert "'head.fc.bias'" in msg and "'extra.weight'" in msg and 'teacher_ckpt_strict' in msg
    model = MODELS.build(dict(kwargs, teacher_ckpt_strict=False))
    assert torch.equal(model.teacher.head.fc.weight, teacher.head.fc.weight)


def test_non_finite_loss_names_the_loss():
    model = build(logit_distiller())
    data = model.data_preprocessor(batch(), True)
    with torch.no_grad():
        model.architecture.head.fc.weight.fill_(float('nan'))
    with pytest.raises(FloatingPointError) as err:
        model(**data, mode='loss')
    assert 'distill.loss_kd' in str(err.value) and 'iteration' in str(err.value)


def test_trusted_loading_is_an_explicit_opt_in(tmp_path):
    import collections

    from mmkd.utils import UnsafeCheckpointError, safe_torch_load

    path = tmp_path / 'custom.pth'
    torch.save({'state_dict': collections.OrderedDict(), 'obj': Custom()}, path)
    with pytest.raises(UnsafeCheckpointError):
        safe_torch_load(str(path))
    assert isinstance(safe_torch_load(str(path), trusted=True)['obj'], Custom)


class Custom:  # a class that is not on the allow-list (module level so it pickles)
    pass
