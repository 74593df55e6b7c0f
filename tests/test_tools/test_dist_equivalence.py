"""1 process with batch 16 vs `tools/dist_train.sh CONFIG 2` (gloo, CPU) with batch 8 each.

DefaultSampler gives rank r the positions r, r+2, ... of the same shuffled order, so
the two half-batches of step k are exactly the single process's batch k; DDP averages
the gradients, so with per-sample-normalised models and mean-reduced losses the two
runs must log the same losses (the mean of the two ranks) step after step.
"""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

from .cli import ROOT, run_tool, save_random_teacher

HERE = osp.dirname(osp.abspath(__file__))  # holds loss_dump_hook.py
CFG = 'tests/test_tools/configs/dist_equivalence_fitnet_kd_digits.py'


@pytest.fixture(scope='module')
def teacher_ckpt(tmp_path_factory):
    from mmengine.config import Config
    cfg = Config.fromfile('configs/kd/teacher_resnet18-w32_digits_demo.py')
    return save_random_teacher(dict(cfg.model, _scope_='mmpretrain'),
                               tmp_path_factory.mktemp('teacher') / 'teacher.pth')[0]


def read_losses(work, rank):
    with open(osp.join(work, f'losses_rank{rank}.json')) as f:
        return {int(k): v for k, v in json.load(f).items()}


@pytest.mark.slow
def test_two_processes_log_the_same_losses_as_one(tmp_path, teacher_ckpt):
    single, dual = str(tmp_path / 'single'), str(tmp_path / 'dual')
    run_tool('tools/train.py', CFG, '--work-dir', single, '--cfg-options',
             f'model.teacher_ckpt={teacher_ckpt}', env=dict(OMP_NUM_THREADS='1', PYTHONPATH=HERE))
    env = dict(os.environ, PATH=osp.dirname(sys.executable) + os.pathsep + os.environ['PATH'],
               PORT='29537', OMP_NUM_THREADS='1', PYTHONPATH=HERE)
    proc = subprocess.run(
        ['bash', 'tools/dist_train.sh', CFG, '2', '--work-dir', dual, '--cfg-options',
         f'model.teacher_ckpt={teacher_ckpt}', 'train_dataloader.batch_size=8'],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert 'GPU number: 2' in out
    # DDP ran without find_unused_parameters: the frozen teacher is not a submodule and
    # the FitNet connector is used in every step.
    assert 'find_unused_parameters=True' not in open(osp.join(dual, osp.basename(CFG))).read()

    one, r0, r1 = read_losses(single, 0), read_losses(dual, 0), read_losses(dual, 1)
    assert sorted(one) == sorted(r0) == sorted(r1) == [0, 1, 2, 3]
    names = {'loss', 'distill.loss_kd', 'distill.loss_fitnet'}
    assert names <= set(one[0])
    for step in one:
        for name in one[step]:
            both = (r0[step][name] + r1[step][name]) / 2
            assert abs(both - one[step][name]) <= 1e-5 * max(1.0, abs(one[step][name])), (
                f'step {step} {name}: 1 process {one[step][name]!r}, 2 processes {both!r}')
        # The ranks really saw different halves of the batch.
        assert r0[step]['loss'] != r1[step]['loss']
