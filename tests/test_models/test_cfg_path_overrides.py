"""``dict(cfg_path=..., **overrides)`` merges the overrides into the referenced model by
mmengine's rules, and a relative ``cfg_path`` resolves next to the config file naming it."""
import os.path as osp
import textwrap

import pytest
from mmengine.config import Config

from mmkd.utils.model_builder import build_task_model, resolve_relative_cfg_paths

TINY_CLS = textwrap.dedent("""
    model = dict(
        type='ImageClassifier',
        _scope_='mmpretrain',
        backbone=dict(type='ResNet_CIFAR', depth=18, stem_channels=8, base_channels=8,
                      out_indices=(3, )),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=4, in_channels=64,
                  loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))
""")


@pytest.fixture
def student_file(tmp_path):
    path = tmp_path / 'models' / 'student.py'
    path.parent.mkdir()
    path.write_text(TINY_CLS)
    return path


def test_overrides_reach_the_built_model(student_file):
    model, _ = build_task_model(dict(cfg_path=str(student_file), pretrained=False,
                                     head=dict(num_classes=10),
                                     backbone=dict(base_channels=4, stem_channels=4)))
    assert model.head.num_classes == 10 and model.head.fc.out_features == 10
    assert model.head.fc.in_features == 64  # untouched keys of the head keep their value
    assert model.backbone.conv1.out_channels == 4


def test_delete_replaces_a_nested_dict(student_file):
    model, _ = build_task_model(dict(
        cfg_path=str(student_file),
        head=dict(loss=dict(_delete_=True, type='LabelSmoothLoss', label_smooth_val=0.1))))
    assert type(model.head.loss_module).__name__ == 'LabelSmoothLoss'
    from mmkd.utils.model_builder import merge_model_cfg
    base = Config.fromfile(str(student_file)).model.to_dict()
    replaced = merge_model_cfg(base, dict(head=dict(loss=dict(_delete_=True, type='X'))))
    merged = merge_model_cfg(base, dict(head=dict(loss=dict(type='X'))))
    assert replaced['head']['loss'] == {'type': 'X'}
    assert merged['head']['loss'] == {'type': 'X', 'loss_weight': 1.0}
    assert merged['head']['num_classes'] == 4 and base['head']['loss']['type'] == 'CrossEntropyLoss'


def test_model_override_is_the_same_as_keys_next_to_cfg_path(student_file):
    a, _ = build_task_model(dict(cfg_path=str(student_file), model_override=dict(
        head=dict(num_classes=7))))
    assert a.head.num_classes == 7


def test_relative_cfg_path_resolves_next_to_the_config_that_names_it(tmp_path, student_file,
                                                                     monkeypatch):
    # the distillation config lives in tmp/configs/exp/, inherits a base in tmp/configs/,
    # and each names the student relative to itself; the working directory is elsewhere
    (tmp_path / 'configs' / 'exp').mkdir(parents=True)
    (tmp_path / 'configs' / 'base.py').write_text(
        "model = dict(teacher=dict(cfg_path='../models/student.py'))\n")
    child = tmp_path / 'configs' / 'exp' / 'child.py'
    child.write_text("_base_ = ['../base.py']\n"
                     "model = dict(architecture=dict(cfg_path='../../models/student.py', "
                     "head=dict(num_classes=3)))\n")
    elsewhere = tmp_path / 'cwd'
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = resolve_relative_cfg_paths(Config.fromfile(str(child)))
    assert cfg.model.architecture.cfg_path == str(student_file)
    assert cfg.model.teacher.cfg_path == str(student_file)  # relative to base.py, not child.py
    model, _ = build_task_model(cfg.model.architecture.to_dict())
    assert model.head.num_classes == 3
    # unresolved, the same relative path is looked up in the working directory and fails
    with pytest.raises(FileNotFoundError, match='cfg_path'):
        build_task_model(dict(cfg_path='../../models/student.py'), key='architecture')


def test_absolute_and_package_paths_are_left_alone(tmp_path, student_file):
    cfg_file = tmp_path / 'c.py'
    cfg_file.write_text(f"model = dict(a=dict(cfg_path={str(student_file)!r}), "
                        "b=dict(cfg_path='mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'))\n")
    cfg = resolve_relative_cfg_paths(Config.fromfile(str(cfg_file)))
    assert cfg.model.a.cfg_path == str(student_file)
    assert cfg.model.b.cfg_path == 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
    assert osp.isabs(cfg.model.a.cfg_path)


def test_tools_train_resolves_relative_cfg_path(tmp_path, student_file, monkeypatch):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'mmkd_train_tool', osp.join(osp.dirname(__file__), '..', '..', 'tools', 'train.py'))
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    child = tmp_path / 'configs' / 'pair.py'
    child.parent.mkdir()
    child.write_text("model = dict(type='SingleTeacherDistill', "
                     "architecture=dict(cfg_path='../models/student.py'))\n"
                     "train_dataloader = dict()\n")
    monkeypatch.chdir(tmp_path / 'models')  # anywhere but next to the config
    cfg = train.build_cfg(train.parse_args([str(child), '--work-dir', str(tmp_path / 'w')]))
    assert cfg.model.architecture.cfg_path == str(student_file)
