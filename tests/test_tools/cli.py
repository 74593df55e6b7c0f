"""Run the CLI tools in a subprocess, as a user would, and fail with the log tail."""
import os
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def run_tool(*args, timeout=900, env=None, expect_fail=False):
    full_env = {**os.environ, 'OMP_NUM_THREADS': '2', **(env or {})}
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=full_env)
    out = proc.stdout + proc.stderr
    if expect_fail:
        assert proc.returncode != 0, out[-3000:]
    else:
        assert proc.returncode == 0, f'{" ".join(args)} failed:\n{out[-5000:]}'
    return out


def last_checkpoint(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def save_random_teacher(model_cfg, path, seed=0):
    """Build a teacher with random weights (seeded) and save it as a checkpoint.

    ``model_cfg``: a model dict or ``dict(cfg_path=...)``. Returns ``(path, state_dict)``.
    """
    import torch

    from mmkd.utils import build_task_model
    torch.manual_seed(seed)
    teacher, _ = build_task_model(model_cfg)
    state = teacher.state_dict()
    torch.save({'state_dict': state, 'meta': {}}, path)
    return str(path), {k: v.clone() for k, v in state.items()}
