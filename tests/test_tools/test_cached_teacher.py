"""A run from cached teacher outputs gives the same losses, step by step, as a run
with the teacher online on the identically replayed data; a changed teacher
checkpoint invalidates the cache with a clear error."""
import re

import pytest
import torch

from .cli import run_tool

CFG = 'configs/kd/kd_logits_resnet18-w32_resnet18-w8_digits-10pct_cached_demo.py'


def teacher_file(path, seed):
    from mmengine.config import Config

    from mmkd.utils import build_task_model
    torch.manual_seed(seed)
    cfg = Config.fromfile('configs/kd/teacher_resnet18-w32_digits_demo.py')
    teacher, _ = build_task_model(dict(cfg.model, _scope_='mmpretrain'))
    torch.save({'state_dict': teacher.state_dict(), 'meta': {}}, path)
    return str(path)


def losses(log):
    rows = re.findall(r'Iter\(train\) \[\s*(\d+)/\d+\].*?\sloss: ([\d.]+).*?distill\.loss_kd: ([\d.]+)', log)
    return {int(i): (float(a), float(b)) for i, a, b in rows}


@pytest.mark.slow
def test_cached_equals_online_and_detects_stale_cache(tmp_path):
    teacher = teacher_file(tmp_path / 'teacher.pth', 0)
    subset = ['train_dataloader.dataset.dataset.indices=96', 'train_dataloader.dataset.draws=2',
              'train_dataloader.batch_size=16', f'model.teacher_ckpt={teacher}']
    cache = str(tmp_path / 'cache')
    out = run_tool('tools/cache_teacher.py', CFG, '--out', cache, '--cfg-options',
                   'train_dataloader.dataset.cache_dir=None', *subset)
    assert 'cached 192 teacher outputs' in out
    common = ['train_cfg.max_iters=6', 'train_cfg.val_interval=100', 'default_hooks.logger.interval=1',
              'randomness.seed=3', *subset]
    online = losses(run_tool('tools/train.py', CFG, '--work-dir', str(tmp_path / 'online'),
                             '--cfg-options', 'train_dataloader.dataset.cache_dir=None', *common))
    cached_log = run_tool('tools/train.py', CFG, '--work-dir', str(tmp_path / 'cached'),
                          '--cfg-options', f'train_dataloader.dataset.cache_dir={cache}', *common)
    cached = losses(cached_log)
    assert sorted(online) == list(range(1, 7)) and sorted(cached) == sorted(online)
    for step in online:
        for a, b in zip(online[step], cached[step]):
            # logits stored in fp16: relative rounding ~5e-4 on the KD term
            assert b == pytest.approx(a, rel=5e-3, abs=2e-4), (step, online[step], cached[step])
    # Another teacher checkpoint: the cache is refused with a clear error.
    other = teacher_file(tmp_path / 'other.pth', 1)
    out = run_tool('tools/train.py', CFG, '--work-dir', str(tmp_path / 'stale'), '--cfg-options',
                   f'train_dataloader.dataset.cache_dir={cache}', *common,
                   f'model.teacher_ckpt={other}', expect_fail=True)
    assert 'computed by another teacher' in out and 'cache_teacher.py' in out
    # Another pipeline: refused when the wrapper is built.
    out = run_tool('tools/train.py', CFG, '--work-dir', str(tmp_path / 'stale2'), '--cfg-options',
                   f'train_dataloader.dataset.cache_dir={cache}', *common,
                   'train_dataloader.dataset.dataset.img_size=20', expect_fail=True)
    assert 'another data set, pipeline' in out
