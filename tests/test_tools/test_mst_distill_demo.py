"""MST-Distill through the CLI: a shortened 3-stage run, resume across a stage
boundary, evaluation of the student, conversion to a plain mmpretrain checkpoint."""
import json

import pytest
import torch

from .cli import (
    as_logged,
    assert_same_predictions,
    config_dumping_predictions,
    last_checkpoint,
    load_predictions,
    logged_metric,
    run_tool,
)

MST_CFG = 'configs/mst_distill/mst-distill_mm-audio_resnet18-w8_xmdigits-10pct_demo.py'
TEACHERS = dict(mm='configs/mst_distill/teacher_mm_img-audio_xmdigits_demo.py',
                audio='configs/mst_distill/teacher_cm_audio_xmdigits_demo.py')


@pytest.fixture(scope='module')
def teacher_ckpts(tmp_path_factory):
    """Randomly initialised teachers saved as ordinary checkpoints (no training)."""
    from mmkd.utils import build_task_model
    folder = tmp_path_factory.mktemp('teachers')
    paths = {}
    for name, cfg in TEACHERS.items():
        torch.manual_seed(0)
        teacher, _ = build_task_model(dict(cfg_path=cfg))
        paths[name] = str(folder / f'{name}.pth')
        torch.save({'state_dict': teacher.state_dict(), 'meta': {}}, paths[name])
    return paths


@pytest.mark.slow
def test_mst_train_resume_test_convert(tmp_path, teacher_ckpts):
    work = str(tmp_path / 'work')
    # MST_CFG with its predictions dumped at validation and at test (metrics unchanged)
    config, dumps = config_dumping_predictions(MST_CFG, tmp_path)
    common = ['--work-dir', work, '--cfg-options',
              f'model.teachers.mm.ckpt={teacher_ckpts["mm"]}',
              f'model.teachers.audio.ckpt={teacher_ckpts["audio"]}',
              'custom_hooks.0.stages=[[cotrain,2],[masknet,2],[student,2]]',
              'train_cfg.val_interval=6', 'default_hooks.checkpoint.interval=3',
              'default_hooks.logger.interval=1', 'train_dataloader.batch_size=8']
    out = run_tool('tools/train.py', config, *common, 'train_cfg.max_iters=3')
    assert 'distill.loss_kd_from_mm' in out and 'distill.loss_kd_from_audio' in out
    assert "stage 'masknet' from iteration 2" in out
    assert 'distill.loss_masknet_mm@fusion' in out and 'distill.loss_masknet_audio@fc1' in out
    assert last_checkpoint(work).endswith('iter_3.pth')

    # Resume inside the MaskNet stage: the stage is recomputed from the iteration.
    out = run_tool('tools/train.py', config, *common, 'train_cfg.max_iters=6', '--resume')
    assert 'Iter(train) [4/6]' in out and 'Iter(train) [1/6]' not in out
    assert "stage 'masknet' from iteration 3" in out and "stage 'student' from iteration 4" in out
    assert "'cotrain' from" not in out
    for key in ('distill.loss_kd', 'distill.loss_lb', 'distill.route.mm@fusion',
                'accuracy/top1'):
        assert key in out, key
    ckpt = last_checkpoint(work)
    assert ckpt.endswith('iter_6.pth')
    val_top1, val_predictions = logged_metric(out, 'accuracy/top1'), load_predictions(dumps['val'])
    state = torch.load(ckpt, weights_only=True)['state_dict']
    assert not any(k.startswith('teacher') for k in state), 'teacher weights in the checkpoint'
    assert any(k.startswith('masknets.mm_0.') for k in state)
    assert any(k.startswith('combiner.gate.fc1') for k in state)

    # tools/test.py evaluates the student on images alone.
    metrics_file = str(tmp_path / 'metrics.json')
    run_tool('tools/test.py', config, ckpt, '--work-dir', work, '--out', metrics_file,
             '--cfg-options', f'model.teachers.mm.ckpt={teacher_ckpts["mm"]}',
             f'model.teachers.audio.ckpt={teacher_ckpts["audio"]}')
    top1 = json.load(open(metrics_file))['accuracy/top1']
    # the student validated at iteration 6 (same class scores, which other weights would
    # not give, and the same logged accuracy) ...
    predictions = load_predictions(dumps['test'])
    assert_same_predictions(val_predictions, predictions, ['gt_label', 'pred_score'])
    assert as_logged(top1) == val_top1
    # ... whose accuracy is that of these predictions, counted here
    correct = [int(p['pred_score'].argmax()) == int(p['gt_label'][0]) for p in predictions]
    assert abs(top1 - 100.0 * sum(correct) / len(correct)) < 1e-4, top1

    # The student converts to a plain mmpretrain checkpoint that loads strictly.
    student_file = str(tmp_path / 'student.pth')
    run_tool('tools/model_converters/convert_kd_ckpt_to_student.py', ckpt, student_file)
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS as PRETRAIN_MODELS
    init_default_scope('mmpretrain')
    cfg = Config.fromfile('configs/mst_distill/student_resnet18-w8_xmdigits-10pct_demo.py')
    student = PRETRAIN_MODELS.build(cfg.model)
    student.load_state_dict(torch.load(student_file, weights_only=True)['state_dict'], strict=True)
