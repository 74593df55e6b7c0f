import pytest

from mmkd.utils import version_check


def test_installed_stack_passes():
    version_check.check_dependencies(strict_optional=True)


def test_wrong_version_says_what_to_install(monkeypatch):
    monkeypatch.setattr(version_check.metadata, 'version',
                        lambda name: '2.2.0' if name == 'mmcv' else '0.10.7')
    with pytest.raises(ImportError) as err:
        version_check.check_dependencies()
    msg = str(err.value)
    assert 'mmcv>=2.0.0,<2.2.0' in msg and 'mmcv==2.2.0' in msg and 'make install' in msg


def test_missing_mmengine(monkeypatch):
    def version(name):
        raise version_check.metadata.PackageNotFoundError(name)
    monkeypatch.setattr(version_check.metadata, 'version', version)
    with pytest.raises(ImportError, match='mmengine'):
        version_check.check_dependencies()
