"""train -> test -> resume -> convert through the CLI for an mmdet detector with FPN
feature KD and an mmseg segmenter with CWD on logits, on tiny generated shapes data."""
import math

import pytest
import torch

from .cli import (
    check_test_run,
    config_dumping_predictions,
    last_checkpoint,
    load_predictions,
    logged_metric,
    run_tool,
    save_random_teacher,
)

DET_CFG = 'configs/fitnet/fitnet_fpn_retinanet-r18_retinanet-r18-w16_shapes_demo.py'
DET_TEACHER = 'mmkd::task_models/retinanet_r18_fpn_shapes_demo.py'
DET_STUDENT = 'configs/task_models/retinanet_r18-w16_fpn_shapes_demo.py'
SEG_CFG = 'configs/cwd/cwd_logits_fcn-r18_fcn-r18-w16_shapes_demo.py'
SEG_TEACHER = 'mmkd::task_models/fcn_r18_shapes_demo.py'
SEG_STUDENT = 'configs/task_models/fcn_r18-w16_shapes_demo.py'


@pytest.fixture(scope='module')
def shapes_root(tmp_path_factory):
    from mmkd.datasets import generate_shapes
    root = tmp_path_factory.mktemp('shapes')
    generate_shapes(str(root), num_train=8, num_val=4, seed=1)
    return str(root)


def random_teacher(cfg_path, path):
    return save_random_teacher(dict(cfg_path=cfg_path), path)[0]


def data_options(root, det, evaluators=True):
    opts = [f'{k}.dataset.data_root={root}/' for k in
            ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    if det and evaluators:
        opts += [f'{k}.ann_file={root}/annotations/instances_val.json'
                 for k in ('val_evaluator', 'test_evaluator')]
    return opts + ['train_dataloader.batch_size=2', 'default_hooks.logger.interval=1']


def check_flow(tmp_path, config, student_cfg, teacher_ckpt, root, det, task_scope, first, second,
               metric_key):
    work = str(tmp_path / 'work')
    # the config with its predictions dumped at validation and at test (metrics unchanged)
    overrides = dict(ann_file=f'{root}/annotations/instances_val.json') if det else {}
    config, dumps = config_dumping_predictions(config, tmp_path, **overrides)
    # A detector trained for a few steps scores few boxes above RetinaNet's 0.05: with no
    # threshold every image keeps its best boxes and CocoMetric always computes mAP.
    options = [f'model.teacher_ckpt={teacher_ckpt}', *data_options(root, det, evaluators=False),
               *(['model.architecture.test_cfg.score_thr=0.0'] if det else [])]
    common = ['--work-dir', work, '--cfg-options', *options]
    out = run_tool('tools/train.py', config, *common, *first)
    assert 'distill.loss_' in out
    val_metric, val_predictions = logged_metric(out, metric_key), load_predictions(dumps['val'])
    ckpt = last_checkpoint(work)
    state = torch.load(ckpt, weights_only=True)['state_dict']
    assert not any(k.startswith('teacher') for k in state)
    metrics_file = str(tmp_path / 'metrics.json')
    out = run_tool('tools/test.py', config, ckpt, '--work-dir', work, '--out', metrics_file,
                   '--cfg-options', *options)
    check_test_run(out, metrics_file, metric_key, dumps['test'], val_predictions,
                   val_metric, det)
    out = run_tool('tools/train.py', config, *common, *second, '--resume')
    assert 'Load checkpoint from' in out or 'resumed' in out.lower()
    assert last_checkpoint(work) != ckpt
    student_file = str(tmp_path / 'student.pth')
    run_tool('tools/model_converters/convert_kd_ckpt_to_student.py', last_checkpoint(work),
             student_file)
    # Load strictly into the plain task model, built by the task package's registry.
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope(task_scope)
    cfg = Config.fromfile(student_cfg)
    student = MODELS.build(cfg.model)
    student.load_state_dict(torch.load(student_file, weights_only=True)['state_dict'], strict=True)


@pytest.mark.slow
def test_detection_fpn_kd_flow(tmp_path, shapes_root):
    teacher = random_teacher(DET_TEACHER, tmp_path / 'teacher.pth')
    check_flow(tmp_path, DET_CFG, DET_STUDENT, teacher, shapes_root, True, 'mmdet',
               ['train_cfg.max_epochs=1', 'train_cfg.val_interval=1'],
               ['train_cfg.max_epochs=2', 'train_cfg.val_interval=2'], 'coco/bbox_mAP')


@pytest.mark.slow
def test_segmentation_cwd_flow(tmp_path, shapes_root):
    teacher = random_teacher(SEG_TEACHER, tmp_path / 'teacher.pth')
    check_flow(tmp_path, SEG_CFG, SEG_STUDENT, teacher, shapes_root, False, 'mmseg',
               ['train_cfg.max_iters=2', 'train_cfg.val_interval=2',
                'default_hooks.checkpoint.interval=2'],
               ['train_cfg.max_iters=4', 'train_cfg.val_interval=4',
                'default_hooks.checkpoint.interval=2'], 'mIoU')


@pytest.mark.slow
@pytest.mark.parametrize('config,teacher_cfg,det', [
    ('configs/mgd/mgd_fpn_retinanet-r18_retinanet-r18-w16_shapes_demo.py', DET_TEACHER, True),
    ('configs/acam_kd/acam-kd_fpn_retinanet-r18_retinanet-r18-w16_shapes_demo.py', DET_TEACHER, True),
    ('configs/mgd/mgd_fcn-r18_fcn-r18-w16_shapes_demo.py', SEG_TEACHER, False),
    ('configs/acam_kd/acam-kd_logits_fcn-r18_fcn-r18-w16_shapes_demo.py', SEG_TEACHER, False),
])
def test_method_demo_configs_shortened(tmp_path, shapes_root, config, teacher_cfg, det):
    """The MGD and ACAM-KD demo configs train (2 iterations / 1 short epoch), log their
    distillation losses through tools/train.py and validate the student with a metric
    (for detection with no score threshold, so that the results are never empty)."""
    teacher = random_teacher(teacher_cfg, tmp_path / 'teacher.pth')
    length = (['train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
               'model.architecture.test_cfg.score_thr=0.0'] if det else
              ['train_cfg.max_iters=2', 'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2'])
    out = run_tool('tools/train.py', config, '--work-dir', str(tmp_path / 'w'), '--cfg-options',
                   f'model.teacher_ckpt={teacher}', *data_options(shapes_root, det), *length)
    method = 'mgd' if '/mgd/' in config else 'acam'
    assert f'distill.loss_{method}' in out
    assert 'results of the whole dataset is empty' not in out, out[-2000:]
    assert math.isfinite(float(logged_metric(out, 'coco/bbox_mAP' if det else 'mIoU')))
