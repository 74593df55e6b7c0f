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


def run_two_process_fsdp_demo(config, work_dir, port):
    """An FSDP readiness demo under ``torch.distributed.run`` on 2 CPU processes (gloo):
    3 iterations, random teacher, validation on 4 images. Returns the log."""
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
           f'--master_port={port}', 'tools/train.py', config, '--launcher', 'pytorch',
           '--work-dir', str(work_dir), '--cfg-options', 'model.teacher_ckpt=None',
           'train_cfg.max_iters=3', 'train_cfg.val_interval=3', 'default_hooks.checkpoint.interval=3',
           'default_hooks.logger.interval=1', 'val_dataloader.dataset.num_images=4']
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, 'OMP_NUM_THREADS': '1'})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    return out
