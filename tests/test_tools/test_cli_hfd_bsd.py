"""HFD/BSD collaborative distillation through the CLI: train the shapes demo config a
few iterations, test either student, convert both to plain mmseg checkpoints; and an
exact resume of the two-optimizer algorithm."""
import json
import re

import pytest
import torch

from .cli import (
    check_test_run,
    config_dumping_predictions,
    last_checkpoint,
    load_predictions,
    logged_metric,
    mean_iou,
    run_tool,
)

CFG = 'configs/hfd_bsd/hfd-bsd_deeplabv3plus-r18-w16_segformer-mit-tiny_shapes_demo.py'
STUDENT_CFGS = dict(cnn='configs/hfd_bsd/deeplabv3plus_r18-w16_shapes_alone.py',
                    vit='configs/hfd_bsd/segformer_mit-tiny_shapes_alone.py')


@pytest.fixture(scope='module')
def shapes_root(tmp_path_factory):
    from mmkd.datasets import generate_shapes
    root = tmp_path_factory.mktemp('shapes')
    generate_shapes(str(root), num_train=8, num_val=4, seed=1)
    return str(root)


def data_options(root):
    return [f'{k}.dataset.data_root={root}/' for k in
            ('train_dataloader', 'val_dataloader', 'test_dataloader')] + [
        'train_dataloader.batch_size=2', 'default_hooks.logger.interval=1']


@pytest.mark.slow
def test_train_test_either_student_convert_both(tmp_path, shapes_root):
    work = str(tmp_path / 'work')
    # the config with its predictions dumped at validation and at test (metrics unchanged)
    config, dumps = config_dumping_predictions(CFG, tmp_path)
    out = run_tool('tools/train.py', config, '--work-dir', work, '--cfg-options',
                   *data_options(shapes_root), 'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
                   'default_hooks.checkpoint.interval=2')
    # validation during training evaluates the config's eval_student, 'cnn'
    val_metric, val_predictions = logged_metric(out, 'mIoU'), load_predictions(dumps['val'])
    for key in ('distill.loss_hfd_cnn', 'distill.loss_region_bsd_vit', 'distill.loss_pixel_bsd_vit',
                'cnn.lr', 'vit.lr'):
        assert key in out, key
    ckpt = last_checkpoint(work)
    saved = torch.load(ckpt, weights_only=False)
    assert set(saved['optimizer']) == {'cnn', 'vit'}
    tested = {}
    for side in ('cnn', 'vit'):
        metrics_file = str(tmp_path / f'metrics_{side}.json')
        out = run_tool('tools/test.py', config, ckpt, '--work-dir', work, '--out', metrics_file,
                       '--cfg-options', *data_options(shapes_root), f'model.eval_student={side}')
        predictions = load_predictions(dumps['test'])
        if side == 'cnn':  # the student validated at the end of training: the same figures
            metric = check_test_run(out, metrics_file, 'mIoU', dumps['test'], val_predictions,
                                    val_metric, det=False)
        else:  # the other student: its own mIoU, recounted from its predictions
            metric = json.load(open(metrics_file))['mIoU']
            assert abs(metric - mean_iou(predictions)) < 0.006, (metric, mean_iou(predictions))
        tested[side] = predictions
    # eval_student switched the evaluated network: the two students' logits differ
    assert len(tested['cnn']) == len(tested['vit']) > 0
    assert all(not torch.allclose(a['seg_logits']['data'], b['seg_logits']['data'])
               for a, b in zip(tested['cnn'], tested['vit']))
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope('mmseg')
    for side, student_cfg in STUDENT_CFGS.items():
        student_file = str(tmp_path / f'{side}.pth')
        run_tool('tools/model_converters/convert_kd_ckpt_to_student.py', ckpt, student_file,
                 '--student', side)
        state = torch.load(student_file, weights_only=True)['state_dict']
        model = MODELS.build(Config.fromfile(student_cfg).model)
        model.load_state_dict(state, strict=True)
        for key, value in state.items():
            assert torch.equal(value, saved['state_dict'][f'students.{side}.{key}'])
    # without --student the converter says which students there are
    out = run_tool('tools/model_converters/convert_kd_ckpt_to_student.py', ckpt,
                   str(tmp_path / 'x.pth'), expect_fail=True)
    assert "--student" in out and "'cnn', 'vit'" in out


def losses(log):
    return {int(i): rest for i, rest in re.findall(r'Iter\(train\) \[\s*(\d+)/\d+\]\s+cnn\.lr: \S+\s+'
                                                   r'vit\.lr: \S+\s+eta: \S+\s+time: \S+\s+'
                                                   r'data_time: \S+\s+(.*)', log)}


@pytest.mark.slow
def test_resume_is_exact(tmp_path, shapes_root):
    """4 iterations straight == 2 iterations, stop, resume to 4 (CPU, deterministic):
    identical logged losses, weights of both students and connectors, both optimizers."""
    common = ['--cfg-options', *data_options(shapes_root), 'randomness.deterministic=True',
              'randomness.seed=7', 'train_cfg.val_interval=100', 'default_hooks.checkpoint.interval=2',
              'param_scheduler.0.end=4']
    straight = str(tmp_path / 'straight')
    log_a = run_tool('tools/train.py', CFG, '--work-dir', straight, *common, 'train_cfg.max_iters=4')
    split = str(tmp_path / 'split')
    run_tool('tools/train.py', CFG, '--work-dir', split, *common, 'train_cfg.max_iters=2')
    log_b = run_tool('tools/train.py', CFG, '--work-dir', split, '--resume', *common, 'train_cfg.max_iters=4')
    a, b = losses(log_a), losses(log_b)
    assert sorted(a) == [1, 2, 3, 4] and sorted(b) == [3, 4]
    for step in b:
        assert a[step] == b[step], (step, a[step], b[step])
    wa = torch.load(last_checkpoint(straight), weights_only=False)
    wb = torch.load(last_checkpoint(split), weights_only=False)
    assert wa['state_dict'].keys() == wb['state_dict'].keys()
    assert any(k.startswith('connectors.vit.') for k in wa['state_dict'])
    for key, value in wa['state_dict'].items():
        assert torch.equal(value, wb['state_dict'][key]), key
    for side in ('cnn', 'vit'):
        sa, sb = wa['optimizer'][side]['state'], wb['optimizer'][side]['state']
        assert sa.keys() == sb.keys() and sa
        for k in sa:
            for name in ('exp_avg', 'exp_avg_sq'):
                assert torch.equal(sa[k][name], sb[k][name]), (side, k, name)


@pytest.mark.slow
def test_dist_train_two_processes(tmp_path, shapes_root):
    """tools/dist_train.sh CONFIG 2 (gloo, CPU): the two-optimizer step runs under
    mmkd.MultiOptimizerDataParallel (mmengine's DDP wrapper raises on OptimWrapperDict)."""
    import os
    import os.path as osp
    import subprocess
    import sys

    from .cli import ROOT
    work = str(tmp_path / 'dist')
    env = dict(os.environ, PATH=osp.dirname(sys.executable) + os.pathsep + os.environ['PATH'],
               PORT='29541', OMP_NUM_THREADS='1')
    proc = subprocess.run(
        ['bash', 'tools/dist_train.sh', CFG, '2', '--work-dir', work, '--cfg-options',
         *data_options(shapes_root), 'train_cfg.max_iters=2', 'train_cfg.val_interval=100',
         'default_hooks.checkpoint.interval=2'],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert 'GPU number: 2' in out and 'Iter(train) [2/2]' in out
    state = torch.load(osp.join(work, 'iter_2.pth'), weights_only=False)['state_dict']
    assert any(k.startswith('students.cnn.') for k in state)
    assert any(k.startswith('students.vit.') for k in state)
