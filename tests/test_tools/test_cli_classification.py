"""train -> test -> resume -> convert, through the CLI, for an mmpretrain student on digits."""

import os.path as osp

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
    save_random_teacher,
)

KD_CFG = 'configs/kd/kd_logits_resnet18-w32_resnet18-w8_digits-10pct_demo.py'


@pytest.fixture(scope='module')
def teacher_ckpt(tmp_path_factory):
    from mmengine.config import Config
    cfg = Config.fromfile('configs/kd/teacher_resnet18-w32_digits_demo.py')
    return save_random_teacher(dict(cfg.model, _scope_='mmpretrain'),
                               tmp_path_factory.mktemp('teacher') / 'teacher.pth')


@pytest.mark.slow
def test_train_test_resume_convert(tmp_path, teacher_ckpt):
    ckpt_path, teacher_state = teacher_ckpt
    work = str(tmp_path / 'work')
    # KD_CFG with its predictions dumped at validation and at test (metrics unchanged)
    config, dumps = config_dumping_predictions(KD_CFG, tmp_path)
    common = ['--work-dir', work, '--cfg-options', f'model.teacher_ckpt={ckpt_path}',
              'train_cfg.val_interval=4', 'default_hooks.checkpoint.interval=2',
              'default_hooks.logger.interval=1', 'train_dataloader.batch_size=8']
    out = run_tool('tools/train.py', config, *common, 'train_cfg.max_iters=4')
    assert 'distill.loss_kd' in out
    val_top1, val_predictions = logged_metric(out, 'accuracy/top1'), load_predictions(dumps['val'])
    ckpt = last_checkpoint(work)
    assert ckpt.endswith('iter_4.pth')
    state = torch.load(ckpt, weights_only=True)['state_dict']
    assert not any(k.startswith('teacher') for k in state), 'teacher weights leaked into ckpt'
    assert any(k.startswith('architecture.backbone') for k in state)

    # Evaluate the saved checkpoint: the student is measured with the task's metric. The
    # teacher is not loaded for testing: its checkpoint need not even exist.
    metrics_file = str(tmp_path / 'metrics.json')
    absent = str(tmp_path / 'no_such_teacher.pth')
    out = run_tool('tools/test.py', config, ckpt, '--work-dir', work, '--out', metrics_file,
                   '--cfg-options', f'model.teacher_ckpt={absent}')
    assert ('teacher: not loaded (tools/test.py evaluates the student only)' in out
            and f"teacher_ckpt='{absent}' is not read" in out), out[-3000:]
    import json
    top1 = json.load(open(metrics_file))['accuracy/top1']
    # test.py scored the weights validated at iteration 4 (the same class scores, which
    # a student with other weights, e.g. random ones, would not give) ...
    predictions = load_predictions(dumps['test'])
    assert_same_predictions(val_predictions, predictions, ['gt_label', 'pred_score'])
    assert as_logged(top1) == val_top1
    # ... and its accuracy is the accuracy of these predictions, counted here.
    correct = [int(p['pred_score'].argmax()) == int(p['gt_label'][0]) for p in predictions]
    assert abs(top1 - 100.0 * sum(correct) / len(correct)) < 1e-4, top1

    # Resume from iter 4 to iter 6: the run continues, it does not restart.
    out = run_tool('tools/train.py', config, *common, 'train_cfg.max_iters=6', '--resume')
    assert 'resumed' in out.lower() or 'Load checkpoint from' in out
    assert 'Iter(train) [5/6]' in out and 'Iter(train) [1/6]' not in out
    assert last_checkpoint(work).endswith('iter_6.pth')

    # Convert and load into plain mmpretrain, strictly.
    student_file = str(tmp_path / 'student.pth')
    run_tool('tools/model_converters/convert_kd_ckpt_to_student.py', last_checkpoint(work),
             student_file)
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS as PRETRAIN_MODELS
    init_default_scope('mmpretrain')
    cfg = Config.fromfile('configs/kd/student_resnet18-w8_digits-10pct_demo.py')
    student = PRETRAIN_MODELS.build(cfg.model)
    converted = torch.load(student_file, weights_only=True)
    student.load_state_dict(converted['state_dict'], strict=True)

    # The teacher file on disk is unchanged and was never written to.
    after = torch.load(ckpt_path, weights_only=True)['state_dict']
    assert all(torch.equal(after[k], v) for k, v in teacher_state.items())


@pytest.mark.slow
def test_train_cli_errors(tmp_path):
    out = run_tool('tools/train.py', 'configs/kd/does_not_exist.py', expect_fail=True)
    assert 'does_not_exist.py' in out and 'does not exist' in out
    out = run_tool('tools/train.py', KD_CFG, '--work-dir', str(tmp_path), '--cfg-options',
                   'model.distiller.student_recorders.logits.source=head.fcc',
                   'model.teacher_ckpt=None', expect_fail=True)
    assert 'student_recorders.logits' in out and "'head.fc'" in out


@pytest.mark.slow
def test_dist_train_two_cpu_processes(tmp_path, teacher_ckpt):
    """tools/dist_train.sh runs 2 gloo processes on CPU; DDP needs no
    find_unused_parameters because the frozen teacher is outside the module tree."""
    import os
    import subprocess
    import sys

    from .cli import ROOT
    work = str(tmp_path / 'dist')
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH'],
               PORT='29531', OMP_NUM_THREADS='1')
    proc = subprocess.run(
        ['bash', 'tools/dist_train.sh', KD_CFG, '2', '--work-dir', work, '--cfg-options',
         f'model.teacher_ckpt={teacher_ckpt[0]}', 'train_cfg.max_iters=4', 'train_cfg.val_interval=4',
         'default_hooks.logger.interval=1', 'train_dataloader.batch_size=4'],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert 'Distributed training is not used' not in out
    assert 'Distributed training: True' in out and 'GPU number: 2' in out
    assert 'distill.loss_kd' in out and osp.isfile(osp.join(work, 'iter_4.pth'))


def test_publish_model_keeps_only_the_student(tmp_path):
    """publish_model.py: weights only, student only, hash in the name."""
    import hashlib

    from .cli import run_tool
    state = {'architecture.backbone.w': torch.ones(2), 'distiller.connectors.c.weight': torch.ones(1),
             'distillation_stopped': torch.tensor(False)}
    src = tmp_path / 'iter_10.pth'
    torch.save({'state_dict': state, 'optimizer': {'x': 1}, 'meta': {'iter': 10}}, src)
    out = run_tool('tools/model_converters/publish_model.py', str(src), str(tmp_path / 'kd.pth'))
    final = out.strip().splitlines()[-1]
    digest = hashlib.sha256(open(final, 'rb').read()).hexdigest()[:8]
    assert final.endswith(f'kd-{digest}.pth')
    ckpt = torch.load(final, weights_only=True)
    assert list(ckpt['state_dict']) == ['backbone.w'] and 'optimizer' not in ckpt
    assert ckpt['meta'] == {'iter': 10}


def test_plot_curves(tmp_path):
    from .cli import run_tool
    run_dir = tmp_path / 'run' / '20260101_000000' / 'vis_data'
    run_dir.mkdir(parents=True)
    (run_dir / 'scalars.json').write_text('{"loss": 1.0, "step": 1}\n{"loss": 0.5, "step": 2}\n')
    out = run_tool('tools/analysis_tools/plot_curves.py', str(tmp_path / 'run'), '--out',
                   str(tmp_path / 'c.png'))
    assert 'wrote' in out and (tmp_path / 'c.png').stat().st_size > 1000


@pytest.mark.slow
def test_amp_student_with_bf16_teacher(tmp_path, teacher_ckpt):
    """`--amp` (bf16 autocast on CPU) for the student together with a bf16-cast teacher."""
    ckpt_path, _ = teacher_ckpt
    work = str(tmp_path / 'work')
    out = run_tool('tools/train.py', KD_CFG, '--amp', '--work-dir', work, '--cfg-options',
                   f'model.teacher_ckpt={ckpt_path}', 'model.teacher_precision=bf16',
                   'model.teacher_precision_mode=cast', 'train_cfg.max_iters=3',
                   'train_cfg.val_interval=3', 'default_hooks.logger.interval=1',
                   'train_dataloader.batch_size=8')
    assert 'bf16 autocast on CPU' in out
    assert 'Iter(train) [3/3]' in out and 'distill.loss_kd' in out
    state = torch.load(last_checkpoint(work), weights_only=True)['state_dict']
    assert all(v.dtype == torch.float32 for k, v in state.items() if v.is_floating_point())
    assert not any(k.startswith('teacher') for k in state)
