import hashlib
import os
import shlex
import shutil
import subprocess
import sys

import pytest
import torch
from torch import nn

from mmkd.utils import UnsafeCheckpointError, resolve_checkpoint_file, safe_torch_load
from mmkd.utils.checkpoint import load_from_http_safe, load_teacher_weights


class _RunsCode:
    """Unpickling this calls os.system: the classic malicious checkpoint.

    The command creates ``marker``, so a test can see whether the payload ran.
    """

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f'touch {shlex.quote(self.marker)}', ))


def _save_evil(path, marker):
    torch.save({'state_dict': {}, 'payload': _RunsCode(marker)}, path)


def _assert_names_opt_ins(message):
    for opt_in in ('teacher_ckpt_trusted=True', 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1', 'trusted=True'):
        assert opt_in in message


@pytest.fixture
def fake_web(tmp_path, monkeypatch):
    """Serve local files at URLs: torch.hub's downloader copies ``served[url]``.

    torch.hub's cache dir is moved under ``tmp_path`` (TORCH_HOME); ``calls`` records
    every download.
    """
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    monkeypatch.setattr(torch.hub, '_hub_dir', None)  # forget any earlier torch.hub.set_dir
    assert torch.hub.get_dir().startswith(str(tmp_path))
    web = type('FakeWeb', (), {})()
    web.served, web.calls = {}, []

    def download(url, dst, hash_prefix=None, progress=True):
        web.calls.append(url)
        shutil.copyfile(web.served[url.split('?')[0]], dst)

    monkeypatch.setattr(torch.hub, 'download_url_to_file', download)
    web.cache_dir = os.path.join(torch.hub.get_dir(), 'checkpoints')
    return web


def test_mmengine_checkpoint_objects_load_with_weights_only(tmp_path):
    import numpy as np
    from mmengine.logging import HistoryBuffer, MessageHub
    hub = MessageHub.get_instance('mmkd-test-safe')
    hub.update_scalar('train/loss', 1.5)
    hub.update_scalar('train/loss', 0.5)
    ckpt = {'state_dict': {'w': torch.ones(2)}, 'message_hub': hub.state_dict(),
            'meta': {'seed': np.int64(3), 'arr': np.arange(3.0)}}
    path = tmp_path / 'ok.pth'
    torch.save(ckpt, path)
    loaded = safe_torch_load(str(path))
    buf = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer) and buf.mean() == pytest.approx(1.0)
    assert int(loaded['meta']['seed']) == 3
    # plain torch.load (as mmengine's resume calls it) works too after `import mmkd`
    assert torch.load(path, weights_only=True)['state_dict']['w'].sum() == 2


def test_crafted_pickle_is_refused_and_its_code_does_not_run(tmp_path):
    path, marker = tmp_path / 'evil.pth', tmp_path / 'pwned'
    _save_evil(path, marker)
    with pytest.raises(UnsafeCheckpointError, match='refusing to load') as err:
        safe_torch_load(str(path))
    assert not marker.exists()
    assert str(path) in str(err.value)
    _assert_names_opt_ins(str(err.value))
    # the payload is live: the explicit opt-in runs it (so the check above can fail)
    safe_torch_load(str(path), trusted=True)
    assert marker.exists()


def test_getattr_stand_in_is_restricted(tmp_path):
    import collections

    from mmengine.logging import HistoryBuffer

    class Evil:
        def __init__(self, owner, name):
            self.owner, self.name = owner, name

        def __reduce__(self):
            return (getattr, (self.owner, self.name))

    # getattr is only resolved for HistoryBuffer's statistics methods.
    for owner, name in [(collections.OrderedDict, 'fromkeys'), (HistoryBuffer, '__init__')]:
        path = tmp_path / 'getattr.pth'
        torch.save({'x': Evil(owner, name)}, path)
        with pytest.raises((UnsafeCheckpointError, RuntimeError), match='getattr|refusing'):
            safe_torch_load(str(path))
    torch.save({'x': Evil(HistoryBuffer, 'mean')}, path)
    assert safe_torch_load(str(path))['x'] is HistoryBuffer.mean


def test_malicious_url_checkpoint_is_refused_and_its_code_does_not_run(tmp_path, fake_web, monkeypatch):
    import mmengine.runner.checkpoint as mmengine_ckpt
    from mmengine.runner import CheckpointLoader

    url, marker = 'https://example.com/x/evil.pth', tmp_path / 'pwned'
    _save_evil(tmp_path / 'served_evil.pth', marker)
    fake_web.served[url] = tmp_path / 'served_evil.pth'

    # load_from / --resume / init_cfg=Pretrained all go through CheckpointLoader
    with pytest.raises(UnsafeCheckpointError, match='refusing to load') as err:
        CheckpointLoader.load_checkpoint(url)
    assert url in str(err.value) and os.path.join(fake_web.cache_dir, 'evil.pth') in str(err.value)
    _assert_names_opt_ins(str(err.value))
    # the path SingleTeacherDistill uses for teacher_ckpt
    with pytest.raises(UnsafeCheckpointError, match='refusing to load'):
        load_teacher_weights(nn.Linear(2, 2), url)
    # open-mmlab:// resolves to a URL and calls mmengine's module-level load_from_http
    monkeypatch.setattr(mmengine_ckpt, 'get_external_models', lambda: {'evil': url})
    with pytest.raises(UnsafeCheckpointError, match='refusing to load'):
        CheckpointLoader.load_checkpoint('open-mmlab://evil')
    assert not marker.exists()
    assert fake_web.calls == [url]  # downloaded once, refused three times

    # torch's TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD is the opt-in for trusted URL files; the
    # payload then runs, which shows the marker checks above could fail.
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    CheckpointLoader.load_checkpoint(url)
    assert marker.exists()


def test_benign_url_checkpoint_loads_and_the_download_is_reused(tmp_path, fake_web):
    from mmengine.runner import CheckpointLoader

    url = 'https://example.com/models/good.pth?download=1'
    teacher = nn.Linear(3, 2)
    torch.save({'state_dict': teacher.state_dict(), 'meta': {'epoch': 3}}, tmp_path / 'good_src.pth')
    fake_web.served['https://example.com/models/good.pth'] = tmp_path / 'good_src.pth'

    first = CheckpointLoader.load_checkpoint(url, map_location='cpu')
    second = CheckpointLoader.load_checkpoint(url, map_location='cpu')
    assert torch.equal(first['state_dict']['weight'], teacher.weight.detach())
    assert torch.equal(second['state_dict']['bias'], teacher.bias.detach())
    assert first['meta'] == {'epoch': 3}
    fresh = nn.Linear(3, 2)
    load_teacher_weights(fresh, url)
    assert torch.equal(fresh.weight, teacher.weight)
    assert fake_web.calls == [url]  # one download, reused by the two later loads
    # torch.hub's rule: base name of the URL path, in <hub dir>/checkpoints
    assert resolve_checkpoint_file(url) == os.path.join(fake_web.cache_dir, 'good.pth')
    assert sorted(os.listdir(fake_web.cache_dir)) == ['good.pth']  # no partial files left


def test_url_download_respects_model_dir_and_local_paths_pass_through(tmp_path, fake_web):
    url = 'http://example.com/a/b/w.pth'
    torch.save({'w': torch.arange(3)}, tmp_path / 'w_src.pth')
    fake_web.served[url] = tmp_path / 'w_src.pth'
    loaded = load_from_http_safe(url, map_location='cpu', model_dir=str(tmp_path / 'mine'))
    assert torch.equal(loaded['w'], torch.arange(3))
    assert os.path.isfile(tmp_path / 'mine' / 'w.pth')
    assert not os.path.exists(os.path.join(fake_web.cache_dir, 'w.pth'))
    assert resolve_checkpoint_file(str(tmp_path / 'w_src.pth')) == str(tmp_path / 'w_src.pth')
    with pytest.raises(ValueError, match='no file name'):
        resolve_checkpoint_file('https://example.com/models/')


def test_failed_download_leaves_no_file_under_the_cached_name(tmp_path, fake_web, monkeypatch):
    def broken(url, dst, hash_prefix=None, progress=True):
        with open(dst, 'wb') as f:
            f.write(b'half a checkpoint')
        raise ConnectionError('connection reset')

    monkeypatch.setattr(torch.hub, 'download_url_to_file', broken)
    with pytest.raises(ConnectionError):
        resolve_checkpoint_file('https://example.com/x/cut.pth')
    assert os.listdir(fake_web.cache_dir) == []


def test_fingerprint_of_url_teacher_hashes_the_downloaded_file(tmp_path, fake_web):
    from mmkd.datasets.cached_teacher import file_sha256, teacher_fingerprint

    url = 'https://example.com/teachers/t.pth'
    torch.save({'state_dict': nn.Linear(2, 2).state_dict()}, tmp_path / 't_src.pth')
    fake_web.served[url] = tmp_path / 't_src.pth'
    other = tmp_path / 'other.pth'
    torch.save({'state_dict': nn.Linear(2, 2).state_dict()}, other)
    same_bytes = tmp_path / 'copy' / 't.pth'
    same_bytes.parent.mkdir()
    shutil.copyfile(tmp_path / 't_src.pth', same_bytes)
    cfg, sources = dict(type='Teacher'), ['logits']

    by_url = teacher_fingerprint(cfg, url, sources)
    assert fake_web.calls == [url]
    cached = os.path.join(fake_web.cache_dir, 't.pth')
    with open(tmp_path / 't_src.pth', 'rb') as f:
        assert file_sha256(cached) == hashlib.sha256(f.read()).hexdigest()
    assert by_url == teacher_fingerprint(cfg, str(same_bytes), sources)  # content, not name
    assert by_url != teacher_fingerprint(cfg, str(other), sources)
    assert teacher_fingerprint(cfg, url, sources) == by_url and fake_web.calls == [url]
    with pytest.raises(FileNotFoundError):  # local paths keep their behaviour
        teacher_fingerprint(cfg, str(tmp_path / 'missing.pth'), sources)


@pytest.mark.parametrize('first', ['mmkd', 'mmengine.runner'])
def test_import_mmkd_installs_the_safe_url_loader(first):
    """In a fresh process, whichever of mmkd and mmengine's Runner is imported first."""
    code = (f'import {first}; import mmkd; import mmengine.runner.checkpoint as c; '
            'from mmkd.utils.checkpoint import load_from_http_safe as safe; '
            "assert c.CheckpointLoader._get_checkpoint_loader('https://h/m.pth') is safe; "
            "assert c.CheckpointLoader._get_checkpoint_loader('http://h/m.pth') is safe; "
            'assert c.load_from_http is safe; '
            "assert c.CheckpointLoader._get_checkpoint_loader('/m.pth') is c.load_from_local; print('ok')")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith('ok')
