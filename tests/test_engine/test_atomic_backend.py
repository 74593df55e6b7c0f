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
