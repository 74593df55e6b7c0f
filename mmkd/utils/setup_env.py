"""Set-up helpers."""
from __future__ import annotations


def register_all_modules(init_default_scope: bool = False) -> None:
    """Import every mmkd module that registers something.

    Args:
        init_default_scope (bool): also make 'mmkd' the default scope.
    """
    import mmkd.datasets  # noqa: F401
    import mmkd.engine  # noqa: F401
    import mmkd.evaluation  # noqa: F401
    import mmkd.models  # noqa: F401
    if init_default_scope:
        from mmengine.registry import DefaultScope
        DefaultScope.get_instance('mmkd', scope_name='mmkd')
