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


def student_model():
    from mmengine.config import Config

    from mmkd.utils import build_task_model
    cfg = Config.fromfile('configs/kd/student_resnet18-w8_digits-10pct_demo.py')
    return build_task_model(dict(cfg.model, _scope_='mmpretrain'))[0]


def losses(log):
    rows = re.findall(r'Iter\(train\) \[\s*(\d+)/\d+\].*?\sloss: ([\d.]+).*?distill\.loss_kd: ([\d.]+)', log)
    return {int(i): (float(a), float(b)) for i, a, b in rows}


@pytest.mark.slow
def test_cached_equals_online_and_detects_stale_cache(tmp_path):
    teacher = teacher_file(tmp_path / 'teacher.pth', 0)
    subset = ['train_dataloader.dataset.dataset.indices=96', 'train_dataloader.dataset.draws=2',
              'train_dataloader.batch_size=16', f'model.teacher_ckpt={teacher}']
    cache = str(tmp_path / 'cache')
    # fp32: the cached logits are the online ones exactly, so both runs agree to rounding
    out = run_tool('tools/cache_teacher.py', CFG, '--out', cache, '--dtype', 'fp32', '--cfg-options',
                   'train_dataloader.dataset.cache_dir=None', *subset)
    assert 'cached 192 teacher outputs' in out
    # The cached run does not build the teacher, so it draws fewer random numbers before
    # the student's init_weights than the online run: both start from the same student.
    student = tmp_path / 'student0.pth'
    torch.manual_seed(5)
    torch.save({'state_dict': student_model().state_dict(), 'meta': {}}, student)
    common = ['train_cfg.max_iters=6', 'train_cfg.val_interval=100', 'default_hooks.logger.interval=1',
              'randomness.seed=3', f'load_from={student}', *subset]
    online = losses(run_tool('tools/train.py', CFG, '--work-dir', str(tmp_path / 'online'),
                             '--cfg-options', 'train_dataloader.dataset.cache_dir=None', *common))
    cached_log = run_tool('tools/train.py', CFG, '--work-dir', str(tmp_path / 'cached'),
                          '--cfg-options', f'train_dataloader.dataset.cache_dir={cache}', *common)
    cached = losses(cached_log)
    # the teacher was neither loaded nor run: its outputs came from the cache
    assert 'teacher: not loaded (the training set replays teacher outputs cached in' in cached_log
    assert 'teacher outputs come from the cache' in cached_log
    assert sorted(online) == list(range(1, 7)) and sorted(cached) == sorted(online)
    for step in online:
        for a, b in zip(online[step], cached[step]):
            # the log rounds to 4 decimals
            assert b == pytest.approx(a, rel=2e-4, abs=1e-4), (step, online[step], cached[step])
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
