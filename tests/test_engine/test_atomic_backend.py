import os

import pytest

from mmkd.engine import AtomicLocalBackend


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / 'epoch_1.pth'
    backend = AtomicLocalBackend()
    backend.put(b'good checkpoint', path)
    assert path.read_bytes() == b'good checkpoint'

    def broken_replace(src, dst):
        raise OSError('disk full')

    monkeypatch.setattr(os, 'replace', broken_replace)
    with pytest.raises(OSError, match='disk full'):
        backend.put(b'half', path)
    monkeypatch.undo()
    assert path.read_bytes() == b'good checkpoint'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['epoch_1.pth']  # no temp left
    backend.put_text('epoch_1.pth', tmp_path / 'last_checkpoint')
    assert (tmp_path / 'last_checkpoint').read_text() == 'epoch_1.pth'


def test_runtime_config_selects_it():
    from mmengine.config import Config
    from mmengine.fileio import get_file_backend
    cfg = Config.fromfile('configs/_base_/default_runtime.py')
    args = cfg.default_hooks.checkpoint.backend_args
    assert isinstance(get_file_backend('x.pth', backend_args=args), AtomicLocalBackend)


KILLED_WRITER = r'''
import os, sys, time
import torch
from mmengine.fileio import get_file_backend
import mmkd.engine  # registers atomic_local
path, flag = sys.argv[1], sys.argv[2]
backend = get_file_backend(path, backend_args=dict(backend='atomic_local'))

def save(obj):
    import io
    buf = io.BytesIO()
    torch.save(obj, buf)
    backend.put(buf.getvalue(), path)

save({'state_dict': {'w': torch.zeros(4)}, 'meta': {'iter': 1}})
# Second save: announce, then stall half-way through the write until killed.
import builtins
orig_open = builtins.open
class Stall:
    def __init__(self, f): self.f = f
    def __enter__(self): return self
    def __exit__(self, *a): return self.f.__exit__(*a)
    def write(self, data):
        self.f.write(data[:len(data) // 2]); self.f.flush()
        orig_open(flag, 'w').close()
        time.sleep(60)
    def __getattr__(self, k): return getattr(self.f, k)
os.fdopen_orig = os.fdopen
os.fdopen = lambda *a, **k: Stall(os.fdopen_orig(*a, **k))
save({'state_dict': {'w': torch.ones(1_000_000)}, 'meta': {'iter': 2}})
'''


def test_sigkill_during_save_leaves_previous_checkpoint_loadable(tmp_path):
    """A real process is killed (SIGKILL) half-way through writing a checkpoint: the
    previous checkpoint is still complete and loadable."""
    import signal
    import subprocess
    import sys
    import time

    import torch
    path, flag = tmp_path / 'iter_2.pth', tmp_path / 'writing'
    proc = subprocess.Popen([sys.executable, '-c', KILLED_WRITER, str(path), str(flag)])
    try:
        deadline = time.time() + 120
        while not flag.exists():
            assert proc.poll() is None, 'writer exited before stalling'
            assert time.time() < deadline, 'writer never reached the stalled write'
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    ckpt = torch.load(path, weights_only=True)
    assert ckpt['meta']['iter'] == 1 and torch.equal(ckpt['state_dict']['w'], torch.zeros(4))
    # The half-written temp file is the only trace; it never replaced the checkpoint.
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith('.iter_2.pth.')]
    assert len(leftovers) == 1 and (tmp_path / leftovers[0]).stat().st_size > 0
