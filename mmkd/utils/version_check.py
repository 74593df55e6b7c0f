"""Checks of the versions of the packages mmkd is built on."""
from __future__ import annotations

from importlib import metadata

# (package, minimum inclusive, maximum exclusive, why)
_REQUIREMENTS = (
    ('mmengine', '0.10.0', '1.0.0', 'mmkd uses the mmengine 0.10 Runner/BaseModel API'),
    ('mmcv', '2.0.0', '2.2.0',
     'mmdet 3.3.0 and mmseg 1.2.2 refuse mmcv>=2.2.0; build mmcv 2.1.0 with '
     '`bash tools/install/build_mmcv.sh`'),
)


def _parse(version: str) -> tuple:
    parts = []
    for piece in version.split('+')[0].split('.'):
        digits = ''.join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def check_dependencies(strict_optional: bool = False) -> None:
    """Raise an ImportError naming the fix when mmengine or mmcv is missing or wrong.

    mmcv is optional for pure classification with mmpretrain but required for mmdet
    and mmseg; a missing mmcv is therefore only an error when ``strict_optional``.
    """
    for name, low, high, why in _REQUIREMENTS:
        try:
            found = metadata.version(name)
        except metadata.PackageNotFoundError:
            if name == 'mmcv' and not strict_optional:
                continue
            raise ImportError(
                f'mmkd needs {name}>={low},<{high} but {name} is not installed ({why}). '
                'Run `make install` in the mmkd repository.') from None
        if not (_parse(low) <= _parse(found) < _parse(high)):
            raise ImportError(
                f'mmkd needs {name}>={low},<{high} but found {name}=={found} ({why}). '
                'Run `make install` in the mmkd repository.')
