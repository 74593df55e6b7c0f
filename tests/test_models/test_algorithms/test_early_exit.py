import torch

from mmkd.registry import MODELS

from .helpers import batch, tiny_classifier


def feature_distiller(record_idx=0):
    return dict(
        type='ConfigurableDistiller',
        student_recorders=dict(feat=dict(type='ModuleOutputs', source='backbone.layer3')),
        teacher_recorders=dict(feat=dict(type='ModuleOutputs', source='backbone.layer3')),
        connectors=dict(c=dict(type='ConvConnector', in_channels=16, out_channels=32)),
        distill_losses=dict(loss_fit=dict(type='L2Loss')),
        loss_forward_mappings=dict(loss_fit=dict(
            s_feature=dict(from_student=True, recorder='feat', connector='c'),
            t_feature=dict(from_student=False, recorder='feat', record_idx=record_idx))))


def build(early_exit, record_idx=0):
    torch.manual_seed(0)
    return MODELS.build(dict(type='SingleTeacherDistill', architecture=tiny_classifier(width=4),
                             teacher=tiny_classifier(width=8), teacher_early_exit=early_exit,
                             distiller=feature_distiller(record_idx)))


def run(model):
    ran = []
    handles = [model.teacher.backbone.layer4.register_forward_hook(lambda *a: ran.append('layer4')),
               model.teacher.head.register_forward_hook(lambda *a: ran.append('head'))]
    losses = model(**model.data_preprocessor(batch(), True), mode='loss')
    for h in handles:
        h.remove()
    return losses, ran


def test_teacher_stops_after_last_recorded_module_with_identical_losses():
    fast, ran_fast = run(build(True))
    full, ran_full = run(build(False))
    assert ran_fast == [] and ran_full == ['layer4', 'head']
    assert torch.equal(fast['distill.loss_fit'], full['distill.loss_fit'])


def test_record_from_the_end_disables_early_exit():
    _, ran = run(build(True, record_idx=-1))
    assert ran == ['layer4', 'head']
