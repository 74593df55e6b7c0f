import os
import os.path as osp
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# Keep the 2-core CI machine responsive and results reproducible. `make test` runs two
# pytest-xdist workers with one thread each (OMP_NUM_THREADS=1 set by the Makefile).
os.environ.setdefault('OMP_NUM_THREADS', '2')

#: Test files whose tests are independent of each other (no module-scoped fixture that
#: trains or builds once for several tests): pytest-xdist may spread their tests over
#: the workers. Every other file runs whole on one worker, so a module fixture (a
#: training run shared by several tests) runs once.
SPREAD_OVER_WORKERS = {'test_configs.py'}


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: end-to-end runs through the CLI (minutes)')


def pytest_collection_modifyitems(config, items):
    """With ``--dist loadgroup``: one xdist group per test file, except SPREAD_OVER_WORKERS."""
    for item in items:
        name = osp.basename(str(item.fspath))
        if name not in SPREAD_OVER_WORKERS:
            item.add_marker(pytest.mark.xdist_group(osp.relpath(str(item.fspath), ROOT)))


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
