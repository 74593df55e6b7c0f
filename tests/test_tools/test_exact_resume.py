"""Training N iterations straight and training N/2, stopping and resuming to N give
identical losses and identical final weights (CPU, deterministic mode)."""
import re

import pytest
import torch

from .cli import last_checkpoint, run_tool, save_random_teacher

CFG = 'configs/fitnet/fitnet_resnet18-w32_resnet18-w8_digits-10pct_demo.py'


def losses(log):
    return {int(i): rest for i, rest in re.findall(r'Iter\(train\) \[\s*(\d+)/\d+\]\s+lr: \S+\s+eta: \S+\s+'
                                                   r'time: \S+\s+data_time: \S+\s+(.*)', log)}


@pytest.mark.slow
def test_resume_is_exact(tmp_path):
    from mmengine.config import Config
    cfg = Config.fromfile('configs/kd/teacher_resnet18-w32_digits_demo.py')
    ckpt, _ = save_random_teacher(dict(cfg.model, _scope_='mmpretrain'), tmp_path / 'teacher.pth')
    # FitNet + KD: a learnable connector and a KD-weight warm-up hook must resume too.
    import os.path as osp

    from .cli import ROOT
    cfg_file = tmp_path / 'cfg.py'
    cfg_file.write_text(f"_base_ = ['{osp.join(ROOT, CFG)}']\n"
                        "custom_hooks = [dict(type='mmkd.DistillLossWeightHook', warmup=6)]\n")
    config = str(cfg_file)
    common = ['--cfg-options', f'model.teacher_ckpt={ckpt}', 'randomness.deterministic=True',
              'randomness.seed=7', 'train_cfg.val_interval=100', 'default_hooks.logger.interval=1',
              'default_hooks.checkpoint.interval=4', 'train_dataloader.batch_size=16',
              # mmengine ends a scheduler at max_iters unless `end` is given; the first
              # half runs with max_iters=4 to stand for an interrupted 8-iteration run
              'param_scheduler.0.end=8']
    straight = str(tmp_path / 'straight')
    log_a = run_tool('tools/train.py', config, '--work-dir', straight, *common, 'train_cfg.max_iters=8')
    split = str(tmp_path / 'split')
    run_tool('tools/train.py', config, '--work-dir', split, *common, 'train_cfg.max_iters=4')
    log_b = run_tool('tools/train.py', config, '--work-dir', split, '--resume', *common,
                     'train_cfg.max_iters=8')
    a, b = losses(log_a), losses(log_b)
    assert sorted(b) == [5, 6, 7, 8]
    for step in b:
        assert a[step] == b[step], (step, a[step], b[step])
    wa = torch.load(last_checkpoint(straight), weights_only=True)
    wb = torch.load(last_checkpoint(split), weights_only=True)
    assert wa['state_dict'].keys() == wb['state_dict'].keys()
    assert any('connectors' in k for k in wa['state_dict'])
    for key, value in wa['state_dict'].items():
        assert torch.equal(value, wb['state_dict'][key]), key
    for ga, gb in zip(wa['optimizer']['state'].values(), wb['optimizer']['state'].values()):
        assert torch.equal(ga['momentum_buffer'], gb['momentum_buffer'])


def dense_losses(log):
    """{iteration: logged values after data_time} for any train loop's log lines."""
    return {int(i): rest.strip() for i, rest in
            re.findall(r'Iter\(train\) \[\s*(\d+)/\d+\].*?data_time: \S+\s+(.*)', log)}


# (distill config, why it is a hard case)
DENSE = {
    'mmdet': ('configs/mgd/mgd_fpn_retinanet-r18_retinanet-r18-w16_shapes_demo.py',
              "MGD's random masks (torch RNG), a learnable MGD generator, AdamW, warm-up"),
    'mmseg': ('configs/cwd/cwd_logits_fcn-r18_fcn-r18-w16_shapes_demo.py',
              "FCN head dropout (torch RNG), random resize/crop/flip (numpy), PolyLR"),
}


@pytest.mark.slow
@pytest.mark.parametrize('task', sorted(DENSE))
def test_dense_resume_is_exact(tmp_path, task):
    """Same check for an mmdet and an mmseg distillation config (iteration-based)."""
    import os.path as osp

    from mmengine.config import Config

    from mmkd.datasets import generate_shapes

    from .cli import ROOT
    config, _ = DENSE[task]
    root = str(tmp_path / 'shapes')
    generate_shapes(root, num_train=8, num_val=2, seed=1)
    ckpt, _ = save_random_teacher(Config.fromfile(config).model.teacher, tmp_path / 'teacher.pth')
    cfg_file = tmp_path / 'cfg.py'
    cfg_file.write_text(
        f"_base_ = ['{osp.join(ROOT, config)}']\n"
        "train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=6, val_interval=100)\n"
        "param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=6)]\n"
        "default_hooks = dict(logger=dict(interval=1), "
        "checkpoint=dict(by_epoch=False, interval=3, max_keep_ckpts=4))\n"
        "log_processor = dict(by_epoch=False)\n")
    common = ['--cfg-options', f'model.teacher_ckpt={ckpt}', 'randomness.deterministic=True',
              'randomness.seed=3', 'train_dataloader.batch_size=2',
              *[f'{k}.dataset.data_root={root}/' for k in ('train_dataloader', 'val_dataloader',
                                                          'test_dataloader')]]
    if task == 'mmdet':
        common += [f'{k}.ann_file={root}/annotations/instances_val.json'
                   for k in ('val_evaluator', 'test_evaluator')]
    env = dict(OMP_NUM_THREADS='1')
    straight, split = str(tmp_path / 'straight'), str(tmp_path / 'split')
    log_a = run_tool('tools/train.py', str(cfg_file), '--work-dir', straight, *common, env=env)
    run_tool('tools/train.py', str(cfg_file), '--work-dir', split, *common,
             'train_cfg.max_iters=3', env=env)
    log_b = run_tool('tools/train.py', str(cfg_file), '--work-dir', split, '--resume', *common,
                     env=env)
    assert 'torch random state restored at iteration 3' in log_b
    a, b = dense_losses(log_a), dense_losses(log_b)
    assert sorted(b) == [4, 5, 6], log_b[-2000:]
    assert 'distill.loss' in a[4]
    for step in b:
        assert a[step] == b[step], (step, a[step], b[step])
    wa = torch.load(osp.join(straight, 'iter_6.pth'), weights_only=True)
    wb = torch.load(osp.join(split, 'iter_6.pth'), weights_only=True)
    assert wa['state_dict'].keys() == wb['state_dict'].keys()
    for key, value in wa['state_dict'].items():
        assert torch.equal(value, wb['state_dict'][key]), key
    for sa, sb in zip(wa['optimizer']['state'].values(), wb['optimizer']['state'].values()):
        for name in sa:
            assert torch.equal(sa[name], sb[name]), name
