"""``init_student_from_teacher``: named student modules start from the teacher's tensors
where shapes match (MGD's / FGD's ``init_student``, ACAM-KD's inheriting strategy).

What is checked: copied tensors equal the teacher's and nothing else moves; a shape
mismatch is skipped, counted and leaves the student's tensor alone (or raises on
request); a bad module name fails at build naming the config key and the valid
top-level modules; a resumed Runner ends with the checkpoint's weights, not the
teacher's; and the real-scale MGD / ACAM-KD detection configs, built by the dry run,
log the one-line summary.
"""
import contextlib
import logging
import os.path as osp

import pytest
import torch
from torch import nn

from mmkd.models.utils import InitFromTeacherReport, init_student_from_teacher, parse_init_from_teacher
from mmkd.registry import MODELS

from .test_algorithms.helpers import logit_distiller, tiny_classifier

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


class Net(nn.Module):
    """backbone / neck (conv + BN) / head (linear), ``head_in`` sets the head's shape."""

    def __init__(self, width=4, head_in=8):
        super().__init__()
        self.backbone = nn.Conv2d(3, width, 3)
        self.neck = nn.Sequential(nn.Conv2d(width, 8, 1), nn.BatchNorm2d(8))
        self.head = nn.Sequential(nn.Linear(head_in, 5), nn.ReLU(), nn.Linear(5, 3))


def _randomised(net, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in net.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=g))
            else:
                t.fill_(int(torch.randint(1, 50, (), generator=g)))
    return net


def _snapshot(net):
    return {k: v.clone() for k, v in net.state_dict().items()}


@contextlib.contextmanager
def captured_log(level=logging.INFO):
    """Every record the current MMLogger emits, at ``level`` and above."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler = Keep(level)
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(min(old_level, level) if old_level else level)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def _lines(records):
    return [r.getMessage() for r in records]


# ------------------------------------------------------------------------------
# The function
# ------------------------------------------------------------------------------
def test_copied_tensors_equal_the_teachers_and_nothing_else_moves():
    student, teacher = _randomised(Net(), 1), _randomised(Net(), 2)
    before, t_before = _snapshot(student), _snapshot(teacher)
    with captured_log() as records:
        report = init_student_from_teacher(student, teacher, ['neck', 'head'])
    after = student.state_dict()
    # written out, not derived from the implementation: conv w/b, BN w/b/mean/var/count,
    # two linears w/b
    expected = ['neck.0.weight', 'neck.0.bias', 'neck.1.weight', 'neck.1.bias',
                'neck.1.running_mean', 'neck.1.running_var', 'neck.1.num_batches_tracked',
                'head.0.weight', 'head.0.bias', 'head.2.weight', 'head.2.bias']
    assert report.copied == expected
    assert report.skipped_shape == [] and report.missing_in_teacher == []
    for key in expected:
        assert torch.equal(after[key], t_before[key]), key
        assert not torch.equal(after[key], before[key]), key  # it really changed
    for key in ('backbone.weight', 'backbone.bias'):
        assert torch.equal(after[key], before[key])
    # the teacher is read, never written
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, t_before[key])
    # a copy, not shared storage: training the student leaves the teacher alone
    with torch.no_grad():
        student.neck[0].weight.add_(1.0)
    assert torch.equal(teacher.neck[0].weight, t_before['neck.0.weight'])
    assert 'init_student_from_teacher: neck, head <- teacher: 11 tensors copied, ' \
           '0 skipped (shape)' in _lines(records)


def test_shape_mismatch_is_skipped_counted_and_left_alone():
    student, teacher = _randomised(Net(head_in=8), 1), _randomised(Net(head_in=8), 2)
    teacher.head[0] = nn.Linear(6, 5)  # head.0: (5, 8) in the student, (5, 6) in the teacher
    _randomised(teacher, 3)
    before, t_before = _snapshot(student), _snapshot(teacher)
    with captured_log() as records:
        report = init_student_from_teacher(student, teacher, ['head'])
    assert report.copied == ['head.0.bias', 'head.2.weight', 'head.2.bias']
    assert report.skipped_shape == [('head.0.weight', (5, 8), (5, 6))]
    after = student.state_dict()
    assert torch.equal(after['head.0.weight'], before['head.0.weight'])
    for key in report.copied:
        assert torch.equal(after[key], t_before[key])
    lines = _lines(records)
    assert 'init_student_from_teacher: head <- teacher: 3 tensors copied, 1 skipped (shape)' in lines
    assert any('head.0.weight (5, 8) vs teacher (5, 6)' in line and r.levelno == logging.WARNING
               for line, r in zip(lines, records))
    # on request a mismatch is an error naming the tensor and both shapes
    student2 = _randomised(Net(head_in=8), 1)
    with pytest.raises(ValueError, match=r'head\.0\.weight has shape \(5, 8\) in the student and '
                                         r'\(5, 6\) in the teacher'):
        init_student_from_teacher(student2, teacher,
                                  dict(modules=['head'], on_shape_mismatch='error'))


def test_renamed_modules_missing_tensors_and_a_no_op_are_reported():
    student, teacher = _randomised(Net(), 1), _randomised(Net(), 2)
    # student `neck` <- teacher `neck`, student `head` <- teacher `head` under another name
    teacher.other_head = teacher.head
    report = init_student_from_teacher(student, teacher, dict(modules={'head': 'other_head'}))
    assert report.modules == [('head', 'other_head')]
    assert len(report.copied) == 4
    assert report.line().startswith('init_student_from_teacher: head (teacher other_head) <- teacher')
    # a student tensor the teacher lacks is skipped and counted, teacher leftovers too
    teacher2 = _randomised(Net(), 2)
    teacher2.neck = nn.Sequential(nn.Conv2d(4, 8, 1))  # no BN
    report = init_student_from_teacher(student, teacher2, ['neck'], log=False)
    assert report.copied == ['neck.0.weight', 'neck.0.bias']
    assert report.missing_in_teacher == ['neck.1.weight', 'neck.1.bias', 'neck.1.running_mean',
                                         'neck.1.running_var', 'neck.1.num_batches_tracked']
    assert report.num_skipped == 5
    assert '5 skipped (not in the teacher)' in report.line()
    # nothing copied at all: an error, not a silent no-op
    teacher3 = Net()
    teacher3.head = nn.Sequential(nn.Linear(7, 6), nn.ReLU(), nn.Linear(6, 2))
    with pytest.raises(ValueError, match='nothing was copied'):
        init_student_from_teacher(student, teacher3, ['head'])


def test_a_reduced_precision_teacher_is_cast_and_said_so():
    """teacher_precision_mode='cast' stores the teacher in bf16: the copy is cast to the
    student's fp32 and a warning says the values carry bf16 rounding."""
    student, teacher = _randomised(Net(), 1), _randomised(Net(), 2).to(torch.bfloat16)
    with captured_log() as records:
        report = init_student_from_teacher(student, teacher, ['head'])
    assert student.head[0].weight.dtype == torch.float32
    assert torch.equal(student.head[0].weight, teacher.head[0].weight.float())
    assert report.dtype_converted == ['head.0.weight', 'head.0.bias', 'head.2.weight', 'head.2.bias']
    assert report.line().endswith('4 cast to the student dtype')
    assert any(r.levelno == logging.WARNING and 'reduced precision' in r.getMessage()
               for r in records)


def test_bad_module_names_and_forms_raise_naming_the_key():
    student, teacher = Net(), Net()
    with pytest.raises(KeyError) as err:
        init_student_from_teacher(student, teacher, ['neck', 'bbox_head'])
    text = str(err.value)
    assert "init_student_from_teacher: 'bbox_head' is not a module of the student" in text
    assert "['backbone', 'neck', 'head']" in text
    del teacher.head  # present in the student only
    with pytest.raises(KeyError, match="'head' is not a module of the teacher"):
        init_student_from_teacher(student, teacher, ['head'])
    with pytest.raises(KeyError, match=r"'neck.7' is not a module of the student .* "
                                       r"children of 'neck': \['0', '1'\]"):
        init_student_from_teacher(student, Net(), ['neck.7'])
    with pytest.raises(KeyError, match=r"unknown keys \['modles'\]; valid keys"):
        parse_init_from_teacher(dict(modles=['neck']))
    with pytest.raises(ValueError, match=r"on_shape_mismatch='ignore'; valid: \('skip', 'error'\)"):
        parse_init_from_teacher(dict(modules=['neck'], on_shape_mismatch='ignore'))
    with pytest.raises(TypeError, match='init_student_from_teacher'):
        parse_init_from_teacher(3)
    with pytest.raises(ValueError, match='overlap'):
        init_student_from_teacher(Net(), Net(), ['neck', 'neck.0'])
    assert parse_init_from_teacher(None) is None and parse_init_from_teacher([]) is None
    assert parse_init_from_teacher('neck') == ({'neck': 'neck'}, 'skip')


# ------------------------------------------------------------------------------
# In SingleTeacherDistill
# ------------------------------------------------------------------------------
def _build(**kwargs):
    return MODELS.build(dict(type='SingleTeacherDistill', architecture=tiny_classifier(width=8),
                             teacher=tiny_classifier(width=8), distiller=logit_distiller(),
                             **kwargs))


@pytest.mark.filterwarnings('ignore:SingleTeacherDistill')
def test_algorithm_applies_it_in_init_weights_once():
    torch.manual_seed(0)
    model = _build(init_student_from_teacher=['head'])
    student, teacher = model.architecture, model.teacher
    assert not torch.equal(student.head.fc.weight, teacher.head.fc.weight)  # not at build
    with captured_log() as records:
        model.init_weights()
    assert torch.equal(student.head.fc.weight, teacher.head.fc.weight)
    assert torch.equal(student.head.fc.bias, teacher.head.fc.bias)
    assert isinstance(model.init_from_teacher_report, InitFromTeacherReport)
    assert model.init_from_teacher_report.copied == ['head.fc.weight', 'head.fc.bias']
    assert 'init_student_from_teacher: head <- teacher: 2 tensors copied, 0 skipped (shape)' \
        in _lines(records)
    # the backbone kept the student's own initialisation
    assert not torch.equal(student.backbone.conv1.weight, teacher.backbone.conv1.weight)
    # mmengine initialises once: a second call neither re-copies nor logs
    with torch.no_grad():
        student.head.fc.weight.add_(1.0)
    with captured_log() as records:
        model.init_weights()
    assert not torch.equal(student.head.fc.weight, teacher.head.fc.weight)
    assert not any('init_student_from_teacher' in line for line in _lines(records))


@pytest.mark.filterwarnings('ignore:SingleTeacherDistill')
def test_algorithm_checks_names_at_build():
    with pytest.raises(KeyError) as err:
        _build(init_student_from_teacher=['neck', 'bbox_head'])
    text = str(err.value)
    assert 'init_student_from_teacher' in text and "'bbox_head'" in text
    assert "['data_preprocessor', 'backbone', 'neck', 'head']" in text


@pytest.mark.filterwarnings('ignore:SingleTeacherDistill')
def test_a_checkpoint_loaded_after_init_weights_wins():
    """The Runner's order: init_weights, then load_or_resume (load_state_dict)."""
    torch.manual_seed(0)
    saved = _build(init_student_from_teacher=['backbone', 'head'])
    _randomised(saved.architecture, 5)
    ckpt = {k: v.clone() for k, v in saved.state_dict().items()}
    model = _build(init_student_from_teacher=['backbone', 'head'])
    model.init_weights()
    model.load_state_dict(ckpt)
    for key, value in model.architecture.state_dict().items():
        assert torch.equal(value, ckpt[f'architecture.{key}']), key


@pytest.mark.filterwarnings('ignore:SingleTeacherDistill')
def test_resumed_runner_keeps_the_checkpoint_not_the_teacher(tmp_path):
    """Runner-level: train 2 iterations with the option, then resume at iteration 2. The
    resumed run initialises from the teacher again (it says so) and then loads the
    checkpoint: its student equals the checkpoint, which differs from the teacher."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    from mmkd.utils import build_task_model
    student_cfg = osp.join(ROOT, 'configs/kd/student_resnet18-w8_digits-10pct_demo.py')
    torch.manual_seed(3)
    teacher, _ = build_task_model(dict(cfg_path=student_cfg, pretrained=False))
    teacher_ckpt = str(tmp_path / 'teacher.pth')
    torch.save({'state_dict': teacher.state_dict(), 'meta': {}}, teacher_ckpt)
    kd_cfg = osp.join(ROOT, 'configs/kd/kd_logits_resnet18-w32_resnet18-w8_digits-10pct_demo.py')
    cfg_file = tmp_path / 'cfg.py'
    cfg_file.write_text(
        f"_base_ = [{kd_cfg!r}]\n"
        f"model = dict(teacher=dict(_delete_=True, cfg_path={student_cfg!r}, pretrained=False),\n"
        f"             teacher_ckpt={teacher_ckpt!r},\n"
        "             init_student_from_teacher=['backbone', 'head'])\n"
        "train_dataloader = dict(batch_size=8)\n"
        "train_cfg = dict(max_iters=2, val_interval=100)\n"
        "default_hooks = dict(checkpoint=dict(interval=2), logger=dict(interval=1))\n")

    def runner(**extra):
        cfg = Config.fromfile(str(cfg_file))
        cfg.work_dir = str(tmp_path / 'work')
        for k, v in extra.items():
            cfg[k] = v
        return Runner.from_cfg(cfg)

    first = runner()
    first.train()
    ckpt_path = tmp_path / 'work' / 'iter_2.pth'
    ckpt = torch.load(str(ckpt_path), map_location='cpu', weights_only=False)['state_dict']
    assert first.model.init_from_teacher_report is not None

    second = runner(resume=True, load_from=str(ckpt_path))
    with captured_log() as records:
        second.train()  # max_iters == the resumed iteration: no further step
    report = second.model.init_from_teacher_report
    assert report is not None and len(report.copied) > 60 and report.num_skipped == 0
    assert any(line.startswith('init_student_from_teacher: backbone, head <- teacher: '
                               f'{len(report.copied)} tensors copied')
               for line in _lines(records))
    student = second.model.architecture.state_dict()
    t_state = second.model.teacher.state_dict()
    differs = 0
    for key, value in student.items():
        assert torch.equal(value, ckpt[f'architecture.{key}']), key
        differs += not torch.equal(value, t_state[key])
    assert differs > 0, 'two training steps should have moved the student off the teacher'


# ------------------------------------------------------------------------------
# The real-scale configs, built by the dry run at tiny size
# ------------------------------------------------------------------------------
# Expected counts, written out (weight + bias of each conv / linear, no norm layers):
# RetinaNet: FPN 3 lateral + 5 output convs = 16; head 4 cls + 4 reg convs, retina_cls,
# retina_reg = 20. Faster R-CNN: FPN 4 lateral + 4 output convs = 16; RPN conv, cls, reg
# = 6; RoI head 2 shared fcs, fc_cls, fc_reg = 8.
REAL_SCALE = {
    'configs/mgd/mgd_fpn_retinanet-x101-64x4d_retinanet-r50_2x_coco.py': ('neck, bbox_head', 36),
    'configs/acam_kd/acam-kd_fpn_retinanet-r101_retinanet-r50_2x_coco.py': ('neck, bbox_head', 36),
    'configs/acam_kd/acam-kd_fpn_faster-rcnn-r101_faster-rcnn-r50_2x_coco.py':
        ('neck, rpn_head, roi_head', 30),
}


@pytest.mark.parametrize('config', sorted(REAL_SCALE), ids=lambda c: osp.basename(c)[:-3])
def test_real_scale_configs_log_the_teacher_initialisation(config, monkeypatch):
    from tools.analysis_tools import dry_run as tool
    # the dry run keeps only warnings while it builds; this test wants its INFO lines
    monkeypatch.setattr(tool, '_quiet_init_log', contextlib.nullcontext)
    with captured_log() as records:
        report = tool.dry_run(osp.join(ROOT, config))
    assert not report.problems, '\n'.join(report.lines())
    lines = [line for line in _lines(records) if line.startswith('init_student_from_teacher:')]
    assert len(lines) == 1, lines
    modules, copied = REAL_SCALE[config]
    # every neck/head tensor of these pairs has the teacher's shape (R50 vs R101 / X101)
    assert lines[0] == (f'init_student_from_teacher: {modules} <- teacher: {copied} tensors '
                        'copied, 0 skipped (shape)')


def test_real_scale_configs_carry_the_recipes():
    from mmengine.config import Config
    mgd = Config.fromfile(osp.join(ROOT, 'configs/mgd/mgd_fpn_retinanet-x101-64x4d_retinanet-r50_2x_coco.py'))
    assert mgd.model.init_student_from_teacher == ['neck', 'bbox_head']
    assert mgd.optim_wrapper.clip_grad == dict(max_norm=35, norm_type=2)
    assert mgd.model.teacher.cfg_path == 'mmdet::retinanet/retinanet_x101-64x4d_fpn_ms-640-800-3x_coco.py'
    assert mgd.model.teacher_ckpt.endswith(
        'retinanet_x101_64x4d_fpn_mstrain_3x_coco/'
        'retinanet_x101_64x4d_fpn_mstrain_3x_coco_20210719_051838-022c2187.pth')
    seg = Config.fromfile(osp.join(
        ROOT, 'configs/mgd/mgd_pspnet-r101-d8_pspnet-r18-d8_4xb2-40k_cityscapes-512x512.py'))
    crops = [t['crop_size'] for t in seg.train_dataloader.dataset.pipeline if t['type'] == 'RandomCrop']
    assert [tuple(c) for c in crops] == [(512, 512)] and tuple(seg.data_preprocessor.size) == (512, 512)
    assert seg.train_cfg.max_iters == 40000 and seg.param_scheduler[0]['end'] == 40000
    assert seg.optim_wrapper.optimizer.lr == 0.01
    for name in ('r18', 'mbv2'):
        acam = Config.fromfile(osp.join(
            ROOT, f'configs/acam_kd/acam-kd_logits_deeplabv3-r101-d8_deeplabv3-{name}-d8_4xb2-40k_'
            'cityscapes-512x1024.py'))
        assert acam.train_cfg.max_iters == 40000 and acam.param_scheduler[0]['end'] == 40000
        assert acam.optim_wrapper.optimizer.lr == 0.02
