import os
import os.path as osp
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# Keep the 2-core CI machine responsive and results reproducible.
os.environ.setdefault('OMP_NUM_THREADS', '2')


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: end-to-end runs through the CLI (minutes)')


@pytest.fixture(scope='session', autouse=True)
def _register():
    import mmkd  # noqa: F401
    from mmkd.utils import register_all_modules
    register_all_modules()


@pytest.fixture
def repo_root():
    return ROOT


@pytest.fixture(autouse=True)
def _mmkd_default_scope():
    """Every test starts in the 'mmkd' scope (tests of task data sets switch it)."""
    import uuid

    from mmengine.registry import DefaultScope
    DefaultScope.get_instance(f'mmkd-test-{uuid.uuid4().hex}', scope_name='mmkd')
    yield
