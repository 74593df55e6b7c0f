"""teacher_compile / teacher_channels_last of the teacher container: the compiled (or
channels_last) teacher gives the same outputs and the same recorded tensors as the
eager one, the early exit still stops it, and nothing compiled outlives the forward.

torch.compile on the CPU builds C++ kernels with gcc: the compiled test takes about
20-40 s on a 2-core machine (the tiny teacher has 5 compiled units)."""
import copy

import pytest
import torch
from torch import nn

from mmkd.models.recorders import EarlyExit, ModuleOutputs
from mmkd.models.recorders.recorder_manager import RecorderManager
from mmkd.models.teachers import TeacherCompile, TeacherSet, to_channels_last
from mmkd.models.teachers.compile import compile_units


def _block():
    return nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())


class TinyTeacher(nn.Module):
    """Three blocks of the same shape (so one compiled graph could wrongly serve
    another block's weights), then a head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.body = nn.Sequential(_block(), _block(), _block())
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        return self.head(self.body(self.stem(x)).mean((2, 3)))


def tiny_teacher(seed=0):
    torch.manual_seed(seed)
    model = TinyTeacher()
    for m in model.modules():  # BN statistics away from identity: folding must be exact
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 2)
            m.bias.data.uniform_(-1, 1)
    return model


def teacher_set(compile=None, channels_last=False):
    teachers = TeacherSet(owner='test', compile=TeacherCompile(compile, channels_last))
    teachers.add('t', tiny_teacher())
    return teachers


def run(teachers, manager, x, head_calls):
    """One teacher forward as SingleTeacherDistill runs it: (output or None, records)."""
    model = teachers.ready('t', 'cpu')
    out = None
    with teachers.forward_context('cpu'), manager:
        try:
            out = model(x)
        except EarlyExit:
            pass
    records = {name: list(rec.data_buffer) for name, rec in manager.recorders.items()}
    manager.reset()
    return out, records, head_calls[0]


def recorders(model, early_exit):
    manager = RecorderManager(dict(mid=ModuleOutputs('body.1'), stem=ModuleOutputs('stem')),
                              side='teacher')
    manager.prepare_from_model(model)
    manager.set_early_exit(dict(mid=1, stem=1) if early_exit else None)
    head_calls = [0]

    def count(*_):
        head_calls[0] += 1
    model.head.register_forward_hook(count)
    return manager, head_calls


def test_units_are_the_largest_submodules_without_hooks_inside():
    model = tiny_teacher()
    assert [p for p, _ in compile_units(model)] == ['stem', 'body', 'head']
    model.body[1].register_forward_hook(lambda *a: None)  # its own hook runs outside forward
    assert [p for p, _ in compile_units(model)] == ['stem', 'body.0', 'body.1', 'body.2', 'head']
    model.body[2][0].register_forward_hook(lambda *a: None)
    # body.2 holds a hooked conv: it runs eagerly; of its children the ReLU (no
    # parameters) is left eager too
    assert [p for p, _ in compile_units(model)] == [
        'stem', 'body.0', 'body.1', 'body.2.0', 'body.2.1', 'head']


def test_options_are_checked():
    assert not TeacherCompile().enabled and not TeacherCompile(False).enabled
    assert TeacherCompile(True).options['freezing'] is True
    tuned = TeacherCompile(dict(mode='max-autotune'))  # torch takes mode or options, not both
    assert tuned.options['mode'] == 'max-autotune' and tuned.options['freezing'] is None
    for bad in (dict(mode='max-autotune', freezing=True), dict(mode='max-autotune', freezing=False),
                dict(mode='reduce-overhead', options={'max_autotune': True})):
        with pytest.raises(ValueError, match=r"teacher_compile: mode='.*' cannot be combined"):
            TeacherCompile(bad)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['fullgrap'\]"):
        TeacherCompile(dict(fullgrap=True))
    with pytest.raises(TypeError, match='must be True, False, None or a dict'):
        TeacherCompile('yes')
    with pytest.raises(TypeError, match='teacher_channels_last'):
        TeacherCompile(None, channels_last='yes')


def test_channels_last_same_outputs_and_kept_after_moves():
    eager, cl = teacher_set(), teacher_set(channels_last=True)
    assert cl['t'].stem.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        ref, out = eager['t'](x), cl['t'](x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    cl.apply(lambda t: t.float())
    assert cl['t'].body[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    conv3d = to_channels_last(nn.Conv3d(2, 2, 1))  # 5-D weights are left alone, no error
    assert conv3d.weight.is_contiguous()


def test_compiled_teacher_same_outputs_records_and_early_exit():
    x = torch.randn(2, 3, 12, 12)
    results = {}
    for name, compile in (('eager', None), ('compiled', True)):
        teachers = teacher_set(compile)
        model = teachers['t']
        manager, head_calls = recorders(model, early_exit=False)
        results[name, 'full'] = run(teachers, manager, x, head_calls)
        assert not any('forward' in m.__dict__ for m in model.modules()), \
            'a compiled forward outlived the teacher forward context'
        if compile:
            assert teachers.compiled_paths('t') == ['stem', 'body.0', 'body.1', 'body.2', 'head']
            plan = teachers._plans['t']
            results[name, 'again'] = run(teachers, manager, x, head_calls)
            assert teachers._plans['t'] is plan  # same hooks: no new plan, no recompilation
            assert copy.deepcopy(teachers)._plans == {}  # a copy compiles for its own modules
        # early exit on the same recorders (the same hooks, so the same compiled units)
        manager.set_early_exit(dict(mid=1, stem=1))
        head_calls[0] = 0
        results[name, 'early'] = run(teachers, manager, x, head_calls)

    ref_out, ref_rec, ref_calls = results['eager', 'full']
    assert ref_calls == 1
    for key in (('compiled', 'full'), ('compiled', 'again')):
        out, rec, _ = results[key]
        torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-5)
        for name in ('mid', 'stem'):
            assert len(rec[name]) == 1
            torch.testing.assert_close(rec[name][0], ref_rec[name][0], rtol=1e-5, atol=1e-5)
    # early exit: no output, body.1 and stem recorded, the head never ran
    for name in ('eager', 'compiled'):
        out, rec, calls = results[name, 'early']
        assert out is None and calls == 0, name
        torch.testing.assert_close(rec['mid'][0], ref_rec['mid'][0], rtol=1e-5, atol=1e-5)


def test_more_units_than_dynamo_default_limit_are_all_compiled():
    """Every compiled unit goes through one dynamo wrapper frame, whose cache holds 8
    entries by default: the 9th unit on would silently stay eager. The teacher forward
    context raises the limit, so all 10 units here compile (10 graphs)."""
    from torch._dynamo.utils import counters
    widths = [3] + [4 + i for i in range(10)]
    model = nn.Sequential(*[nn.Conv2d(a, b, 1) for a, b in zip(widths, widths[1:])])
    teachers = TeacherSet(owner='test', compile=TeacherCompile(dict(freezing=False)))
    teachers.add('t', model)
    x = torch.randn(1, 3, 4, 4)
    with torch.no_grad():
        ref = model(x)
    counters.clear()
    with teachers.forward_context('cpu'):
        out = teachers['t'](x)
    assert len(teachers.compiled_paths('t')) == 10
    assert counters['stats']['unique_graphs'] == 10
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_single_teacher_distill_losses_same_with_teacher_compile():
    """The digits KD demo (ResNet-18 w32 -> w8): one step's losses with the teacher
    compiled and channels_last equal the eager ones (compiling the ResNet takes
    minutes on a 2-core CPU, hence slow)."""
    import os.path as osp

    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmkd.registry import MODELS
    from mmkd.utils import register_all_modules
    root = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    register_all_modules()
    cfg = Config.fromfile(osp.join(root, 'configs/kd/kd_logits_resnet18-w32_resnet18-w8_'
                                         'digits-10pct_demo.py'))
    init_default_scope('mmpretrain')
    losses = {}
    for name, extra in (('eager', {}), ('compiled', dict(teacher_compile=True,
                                                         teacher_channels_last=True))):
        torch.manual_seed(0)
        model_cfg = dict(cfg.model, teacher_ckpt=None, **extra)
        algo = MODELS.build(model_cfg).train()
        torch.manual_seed(1)
        inputs = torch.randint(0, 255, (4, 3, 32, 32), dtype=torch.uint8)
        from mmpretrain.structures import DataSample
        samples = [DataSample().set_gt_label(i % 10) for i in range(4)]
        data = algo.data_preprocessor(dict(inputs=list(inputs), data_samples=samples), True)
        losses[name] = algo.loss(data['inputs'], data['data_samples'])
        if extra:
            assert algo.teacher_set.compiled_paths('teacher')
    for key, value in losses['eager'].items():
        torch.testing.assert_close(losses['compiled'][key], value, rtol=1e-4, atol=1e-5)


def test_compile_refuses_method_patching_teacher_recorders():
    """MethodOutputs/FunctionOutputs patch a method each step: a compiled teacher would
    recompile every step and then silently run eagerly, so the build refuses them."""
    import os.path as osp

    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmkd.registry import MODELS
    root = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    cfg = Config.fromfile(osp.join(root, 'configs/kd/kd_logits_resnet18-w32_resnet18-w8_'
                                         'digits-10pct_demo.py'))
    init_default_scope('mmpretrain')
    distiller = copy.deepcopy(cfg.model.distiller.to_dict())
    distiller['teacher_recorders']['patched'] = dict(
        type='MethodOutputs', source='mmpretrain.models.heads.ClsHead.pre_logits')
    with pytest.raises(ValueError, match=r"teacher_compile: the teacher recorders \['patched'\] "
                       r'patch methods'):
        MODELS.build(dict(cfg.model, teacher_ckpt=None, teacher_compile=True,
                          distiller=distiller))
    # without compile the same recorders build
    MODELS.build(dict(cfg.model, teacher_ckpt=None, distiller=distiller))
