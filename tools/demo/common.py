"""Shared helpers of the demo drivers: run the CLI tools, read back the metrics."""
import json
import os
import os.path as osp
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def run(cmd, log_path):
    """Run a CLI step, keep its full log in a file, fail loudly with its tail."""
    with open(log_path, 'w') as log:
        proc = subprocess.run([sys.executable] + list(cmd), cwd=ROOT, stdout=log,
                              stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        with open(log_path) as log:
            tail = log.read()[-3000:]
        raise SystemExit(f'step failed: {" ".join(cmd)}\n--- log tail ({log_path}) ---\n{tail}')


def last_checkpoint(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def install_checkpoint(src, dst):
    """Copy a checkpoint atomically to the fixed path a later config reads (a teacher)."""
    import shutil
    shutil.copyfile(src, dst + '.part')
    os.replace(dst + '.part', dst)
    return dst


def publish_student(src, dst, log_path):
    """tools/model_converters/publish_model.py: student weights only, ``DST-<sha8>.pth``."""
    os.makedirs(osp.dirname(dst), exist_ok=True)
    run(['tools/model_converters/publish_model.py', src, dst], log_path)
    with open(log_path) as f:
        return f.read().strip().splitlines()[-1]


def test_only(config, ckpt, work_dir, metric, extra=()):
    """tools/test.py on ``ckpt``; returns the metric."""
    os.makedirs(work_dir, exist_ok=True)
    out = osp.join(work_dir, 'test_metrics.json')
    run(['tools/test.py', config, ckpt, '--work-dir', work_dir, '--out', out, *extra],
        osp.join(work_dir, 'test.log'))
    with open(out) as f:
        return json.load(f).get(metric, float('nan'))


def train_and_test(name, config, work_dir, metric, extra=()):
    """tools/train.py then tools/test.py on the last checkpoint; returns (metric, ckpt)."""
    start = time.time()
    os.makedirs(work_dir, exist_ok=True)
    print(f'[demo] training {name} ({config}) ...', flush=True)
    run(['tools/train.py', config, '--work-dir', work_dir, *extra], osp.join(work_dir, 'train.log'))
    ckpt = last_checkpoint(work_dir)
    value = test_only(config, ckpt, work_dir, metric, extra)
    print(f'[demo] {name}: {metric} {value:.4g} ({time.time() - start:.0f} s)', flush=True)
    return value, ckpt
