"""StopDistillHook under DDP: `tools/dist_train.sh CONFIG 2` (gloo, CPU) with a learnable
FitNet connector, distillation stopped after 2 of 4 iterations.

Without find_unused_parameters, DDP needs a gradient for every parameter in every step;
once the distillation losses are skipped, the connector would get none and the step
after the stop would fail with "Expected to have finished reduction in the prior
iteration". The algorithm keeps it in the graph with an exactly-zero gradient.
"""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

from .cli import ROOT
from .test_dist_equivalence import read_losses

HERE = osp.dirname(osp.abspath(__file__))  # holds loss_dump_hook.py
CFG = 'tests/test_tools/configs/stop_distill_ddp_fitnet_digits.py'
DISTILL = ('distill.loss_kd', 'distill.loss_fitnet')


@pytest.mark.slow
def test_stop_distill_hook_with_a_learnable_connector_under_ddp(tmp_path):
    work = str(tmp_path / 'work')
    env = dict(os.environ, PATH=osp.dirname(sys.executable) + os.pathsep + os.environ['PATH'],
               PORT='29547', OMP_NUM_THREADS='1', PYTHONPATH=HERE)
    proc = subprocess.run(['bash', 'tools/dist_train.sh', CFG, '2', '--work-dir', work],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert 'GPU number: 2' in out and 'Expected to have finished reduction' not in out
    dumped = open(osp.join(work, osp.basename(CFG))).read()
    assert 'find_unused_parameters=True' not in dumped and "'hint'" in dumped  # the connector

    # What each rank's optimizer step received: distillation losses in iterations 0-1 only.
    for rank in (0, 1):
        losses = read_losses(work, rank)
        assert sorted(losses) == [0, 1, 2, 3], losses
        for step, values in losses.items():
            present = [k for k in DISTILL if k in values]
            assert present == (list(DISTILL) if step < 2 else []), (rank, step, values)
            # no extra (zero) key; the classifier's own term is logged as loss_cls
            assert set(values) - set(DISTILL) == {'loss', 'loss_cls'}, values

    # The text log (rank 0): no stale distillation values repeated after the stop.
    lines = {int(m.group(1)): m.group(0)
             for m in re.finditer(r'Iter\(train\) \[(\d)/4\].*', out)}
    assert sorted(lines) == [1, 2, 3, 4], out[-3000:]
    for it, line in lines.items():
        for key in DISTILL:
            assert (f'{key}:' in line) == (it <= 2), line
    assert 'StopDistillHook: distillation stopped at epoch 0, iter 2' in out
