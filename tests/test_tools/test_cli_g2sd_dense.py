"""G2SD's specific stage for detection and segmentation through the CLI, shortened: a
G2SD-generic student encoder is converted to a dense backbone, the demo configs train a
few iterations (FRS feature + objectness distillation with warm-up; CWD on logits), the
student is tested with the task's metric and converted to a plain mmdet/mmseg model."""

import pytest
import torch

from .cli import (
    check_test_run,
    config_dumping_predictions,
    last_checkpoint,
    load_predictions,
    logged_metric,
    run_tool,
)
from .mae_distill_cli_helpers import convert_main, save_random

DET = 'configs/g2sd/g2sd-specific_faster-rcnn_vit-d8-w128_vit-d4-w64_p4_shapes_demo.py'
DET_STUDENT = 'configs/g2sd/faster-rcnn_vit-d4-w64_p4_mln_shapes_demo.py'
DET_TEACHER = 'configs/g2sd/faster-rcnn_vit-d8-w128_p4_mln_shapes_demo.py'
SEG = 'configs/g2sd/g2sd-specific_upernet_vit-d8-w128_vit-d4-w64_p4_shapes_demo.py'
SEG_STUDENT = 'configs/g2sd/upernet_vit-d4-w64_p4_mln_shapes_demo.py'
SEG_TEACHER = 'configs/g2sd/upernet_vit-d8-w128_p4_mln_shapes_demo.py'


@pytest.fixture(scope='module')
def shapes_root(tmp_path_factory):
    from mmkd.datasets import generate_shapes
    root = tmp_path_factory.mktemp('shapes')
    generate_shapes(str(root), num_train=8, num_val=4, seed=1)
    return str(root)


@pytest.fixture(scope='module')
def generic_backbone(tmp_path_factory):
    """A (random) G2SD generic-stage student MAE, converted as the README says."""
    tmp = tmp_path_factory.mktemp('generic')
    mae = save_random('configs/_base_/models/mae_vit-d4-w64_p4_digits.py', tmp / 'mae.pth')
    dense = str(tmp / 'vit-d4-w64_dense.pth')
    convert_main([mae, dense, '--no-final-norm'])
    return dense


def student_config(tmp_path, base, backbone):
    """The demo student config with the backbone checkpoint moved to ``backbone``."""
    path = tmp_path / 'student.py'
    path.write_text(f"_base_ = ['{base}']\n"
                    f"model = dict(backbone=dict(init_cfg=dict(checkpoint='{backbone}')))\n")
    return str(path)


def data_options(root):
    # (the val/test metrics' ann_file is set in the config written by run_flow)
    opts = [f'{k}.dataset.data_root={root}/' for k in
            ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    return opts + ['train_dataloader.batch_size=2', 'default_hooks.logger.interval=1']


def run_flow(tmp_path, repo_root, root, backbone, config, student_base, teacher_cfg, det,
             length, metric_key, losses, scope):
    teacher = save_random(teacher_cfg, tmp_path / 'teacher.pth')
    student_cfg = student_config(tmp_path, f'{repo_root}/{student_base}', backbone)
    work = str(tmp_path / 'work')
    # the config with its predictions dumped at validation and at test (metrics unchanged)
    overrides = dict(ann_file=f'{root}/annotations/instances_val.json') if det else {}
    config, dumps = config_dumping_predictions(config, tmp_path, **overrides)
    # Faster R-CNN trained 4 steps scores few boxes above 0.05: with no threshold every
    # image keeps its best boxes and CocoMetric always computes mAP.
    options = [f'model.teacher_ckpt={teacher}', f'model.architecture.cfg_path={student_cfg}',
               *data_options(root),
               *(['model.architecture.test_cfg.rcnn.score_thr=0.0'] if det else [])]
    train_out = out = run_tool('tools/train.py', config, '--work-dir', work, '--cfg-options',
                               *options, *length)
    val_metric, val_predictions = logged_metric(out, metric_key), load_predictions(dumps['val'])
    # the student starts from the converted generic-stage encoder, loaded without misses
    assert f'load backbone. in model from: {backbone}' in out
    assert 'missing keys' not in out and 'unexpected key' not in out
    for name in losses:
        assert f'distill.{name}' in out, name
    ckpt = last_checkpoint(work)
    state = torch.load(ckpt, weights_only=True)['state_dict']
    assert not any(k.startswith('teacher') for k in state)
    assert any(k.startswith('architecture.backbone.layers.3.') for k in state)

    metrics_file = str(tmp_path / 'metrics.json')
    out = run_tool('tools/test.py', config, ckpt, '--work-dir', work, '--out', metrics_file,
                   '--cfg-options', *options)
    check_test_run(out, metrics_file, metric_key, dumps['test'], val_predictions,
                   val_metric, det)

    student_file = str(tmp_path / 'student.pth')
    run_tool('tools/model_converters/convert_kd_ckpt_to_student.py', ckpt, student_file)
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope(scope)
    cfg = Config.fromfile(student_cfg)
    cfg.model.backbone.init_cfg = None
    plain = MODELS.build(cfg.model)
    plain.load_state_dict(torch.load(student_file, weights_only=True)['state_dict'], strict=True)
    return train_out


@pytest.mark.slow
def test_g2sd_specific_detection(tmp_path, repo_root, shapes_root, generic_backbone):
    levels = [f'p{i}' for i in range(2, 7)]
    out = run_flow(tmp_path, repo_root, shapes_root, generic_backbone, DET, DET_STUDENT,
                   DET_TEACHER, True, ['train_cfg.max_epochs=1', 'train_cfg.val_interval=1'],
                   'coco/bbox_mAP',
                   [f'loss_frs_feat_{p}' for p in levels] + [f'loss_frs_cls_{p}' for p in levels],
                   'mmdet')
    # the warm-up hook scales the distillation losses from 0 (iteration 0 of 75)
    assert 'distill_weight_scale: 0.0000' in out


@pytest.mark.slow
def test_g2sd_specific_segmentation(tmp_path, repo_root, shapes_root, generic_backbone):
    run_flow(tmp_path, repo_root, shapes_root, generic_backbone, SEG, SEG_STUDENT, SEG_TEACHER,
             False, ['train_cfg.max_iters=2', 'train_cfg.val_interval=2',
                     'default_hooks.checkpoint.interval=2'],
             'mIoU', ['loss_cwd'], 'mmseg')
