import os

import pytest
import torch

from mmkd.utils import UnsafeCheckpointError, safe_torch_load


class _RunsCode:
    """Unpickling this calls os.system: the classic malicious checkpoint."""

    def __reduce__(self):
        return (os.system, ('echo pwned > /dev/null', ))


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


def test_crafted_pickle_is_refused(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'payload': _RunsCode()}, path)
    with pytest.raises(UnsafeCheckpointError, match='refusing to load'):
        safe_torch_load(str(path))


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
