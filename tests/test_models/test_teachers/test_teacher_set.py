"""The one teacher container (mmkd.models.teachers): every algorithm holds its frozen
teachers in a TeacherSet, and inside ``teachers_not_loaded`` (tools/test.py, cached
training) the teachers are structure only: never loaded, never run, while the student
and every learnable distillation module are built as usual and predict the same."""
import copy
import os.path as osp

import pytest
import torch
from torch import nn

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

# One shipped config per algorithm that holds frozen teachers.
CONFIGS = {
    'SingleTeacherDistill': 'configs/kd/kd_logits_resnet18-w32_resnet18-w8_digits-10pct_demo.py',
    'MaskedImageDistill': 'configs/dmae/dmae_vit-d8-w128_vit-d4-w64_p4_digits_demo.py',
    'MultiTeacherDistill':
        'configs/mst_distill/mst-distill_mm-audio_resnet18-w8_xmdigits-10pct_demo.py',
    'MultiGranularityDistill':
        'configs/mgd_ssss/mgd-ssss_fcn-r18-w32-fcn-r34-w16_fcn-r18-w16_shapes-1of8_demo.py',
    'LlavaKDDistill': 'configs/llava_kd/llava-kd_clip-w128-qwen2-w128-d4_to_w64-d2_shapes-vqa_demo.py',
    'LlavaMoDDistill': 'configs/llava_mod/llava-mod_stage1-d2d-mimic_clip-w128-qwen2-w128-d4_to_'
                       'w64-d2_shapes-vqa_demo.py',
}
# Registered algorithms without frozen teachers, with the reason.
NO_FROZEN_TEACHER = {
    'BaseAlgorithm': 'the base class: a student alone',
    'CollaborativeDistill': 'two students teach each other; there is no frozen teacher',
}


def test_every_algorithm_is_covered():
    from mmkd.models.algorithms import BaseAlgorithm
    from mmkd.registry import MODELS
    from mmkd.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    algorithms = {name for name, cls in MODELS.module_dict.items() if isinstance(cls, type)
                  and (issubclass(cls, BaseAlgorithm) or name.endswith('Distill'))}
    assert len(algorithms) >= 7
    assert algorithms == set(CONFIGS) | set(NO_FROZEN_TEACHER), \
        'a new algorithm: add a config to CONFIGS (or a reason to NO_FROZEN_TEACHER)'


def _values(obj):
    """Every leaf of a predict result, in order (tensors, numbers, strings)."""
    if hasattr(obj, 'to_dict'):
        obj = obj.to_dict()
    if isinstance(obj, dict):
        return [x for k in sorted(obj) for x in _values(obj[k])]
    if isinstance(obj, (list, tuple)):
        return [x for v in obj for x in _values(v)]
    return [obj]


def _same(a, b) -> bool:
    if torch.is_tensor(a) or torch.is_tensor(b):
        return torch.is_tensor(a) and torch.is_tensor(b) and torch.equal(a, b)
    return a == b


@pytest.mark.parametrize('algorithm', sorted(CONFIGS))
def test_structure_only_teachers_predict_the_same(algorithm):
    from mmkd.models.teachers import teachers_not_loaded
    from tools.analysis_tools import dry_run as tool
    config = osp.join(ROOT, CONFIGS[algorithm])
    cfg = tool.load_config(config)
    tiny = tool.tiny_reason(config) is not None
    ref, _, _ = tool.build_model(cfg, tiny=tiny, config=config)
    with teachers_not_loaded('a test asked for it'):
        model, _, _ = tool.build_model(cfg, tiny=tiny, config=config)
    assert type(model).__name__ == algorithm
    teachers = tool.teachers_of(model)
    assert teachers, 'the algorithm holds no frozen teacher'
    for name, teacher in teachers.items():
        params = list(teacher.parameters())
        # every weight is on the meta device (single numbers, e.g. CLIP's logit scale, are
        # made real: constructors may compute with them)
        assert params and all(p.is_meta for p in params if p.numel() > 1), f'{name} holds weights'
    assert not model.teacher_set.loaded and ref.teacher_set.loaded
    # the same state dict: nothing of the teacher in it, every learnable module built
    assert list(model.state_dict()) == list(ref.state_dict())
    model.load_state_dict(ref.state_dict(), strict=True)

    size = tool.DEFAULT_SIZE[tool.task_of(next(iter(tool.student_of(ref).values())))]
    data, _ = tool.make_batch(ref, cfg, config, size, tiny)
    val = data['labelled'] if algorithm == 'MultiGranularityDistill' else data
    ref.eval()
    model.eval()

    def predict(algo):
        torch.manual_seed(0)  # MAE's tensor mode masks at random
        if algorithm == 'MaskedImageDistill':  # an MAE student has no predict mode
            batch = algo.data_preprocessor(copy.deepcopy(val), False)
            return _values(algo(batch['inputs'], batch['data_samples'], mode='tensor'))
        return _values(algo.val_step(copy.deepcopy(val)))

    with torch.no_grad():
        expected, got = predict(ref), predict(model)
    assert len(got) == len(expected) > 0
    assert all(_same(a, b) for a, b in zip(got, expected))

    # a training step would need the teacher: refused with the reason
    model.train()
    optim = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0)
    from mmengine.optim import OptimWrapper
    with pytest.raises(RuntimeError, match=r"was not loaded \(a test asked for it\)"):
        model.train_step(copy.deepcopy(data), OptimWrapper(optim))


def test_structure_only_reads_no_checkpoint_and_logs_why(tmp_path):
    from mmengine.logging import MMLogger

    from mmkd.models.teachers import TeacherSet, teachers_not_loaded
    cfg = dict(_scope_='mmpretrain', type='ImageClassifier',
               backbone=dict(type='ResNet', depth=18, base_channels=8, drop_path_rate=0.1),
               neck=dict(type='GlobalAveragePooling'),
               head=dict(type='LinearClsHead', num_classes=3, in_channels=64))
    missing = str(tmp_path / 'absent.pth')
    logger = MMLogger.get_instance('test_teacher_set', log_file=str(tmp_path / 'log.txt'))
    state = torch.random.get_rng_state()
    with teachers_not_loaded('why not'):
        teachers = TeacherSet(owner='Algo')
        teacher = teachers.add('t', cfg, missing, key='teacher')
    assert torch.equal(torch.random.get_rng_state(), state), 'a meta build draws no random numbers'
    assert all(p.is_meta for p in teacher.parameters())  # (drop-path rates: .item() worked)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    log = open(tmp_path / 'log.txt').read()
    assert "teacher: not loaded (why not)" in log and f"teacher_ckpt='{missing}' is not read" in log
    with pytest.raises(RuntimeError, match="Algo: the teacher 't' was not loaded"):
        teachers.ready('t', 'cpu')
    teachers.apply(lambda t: t.to('cpu'))  # moving the owner does not touch meta tensors
    del logger

    # Outside the context the same missing file is an error naming the key and the file.
    with pytest.raises(Exception, match='absent.pth'):
        TeacherSet(owner='Algo').add('t', cfg, missing, key='teacher')


def test_teacher_set_is_hidden_and_follows_the_owner():
    from mmkd.models.teachers import TeacherPrecision, TeacherSet

    class Owner(nn.Module):
        def __init__(self):
            super().__init__()
            self.student = nn.Linear(3, 2)
            self.teacher_set = TeacherSet(TeacherPrecision('bf16', 'cast'), owner='Owner')
            self.teacher_set.add('t', nn.Linear(3, 2), None)

        @property
        def teacher(self):
            return self.teacher_set['t']

        def _apply(self, fn, *args, **kwargs):
            super()._apply(fn, *args, **kwargs)
            self.teacher_set.apply(fn, *args, **kwargs)
            return self

    owner = Owner()
    assert list(owner.state_dict()) == ['student.weight', 'student.bias']
    assert len(list(owner.parameters())) == 2
    assert owner.teacher.weight.dtype == torch.bfloat16 and not owner.teacher.weight.requires_grad
    owner.float()  # the owner's cast does not undo the teacher's 'cast' precision
    assert owner.teacher.weight.dtype == torch.bfloat16
    with owner.teacher_set.forward_context('cpu'):
        out = owner.teacher_set.ready('t', 'cpu')(torch.ones(1, 3, dtype=torch.bfloat16))
    assert not out.requires_grad
    with pytest.raises(KeyError, match="two teachers are called 't'"):
        owner.teacher_set.add('t', nn.Linear(3, 2), None)
