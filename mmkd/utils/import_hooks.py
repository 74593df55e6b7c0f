"""Run a function right after a module is first imported (a one-shot ``sys.meta_path`` hook).

Used by :mod:`mmkd.utils.checkpoint` (mmengine's http(s) checkpoint scheme) and
:mod:`mmkd.utils.compat` (names transformers moved), which must act on modules that
``import mmkd`` does not import itself, to keep ``import mmkd`` fast.
"""
from __future__ import annotations

import sys


class AfterImport:
    """One-shot import hook: run ``action(module)`` right after module ``fullname`` runs.

    Waiting for whoever imports the module keeps ``import mmkd`` fast: importing
    ``mmengine.runner.checkpoint`` pulls in mmengine's Runner (about a second),
    ``transformers.modeling_utils`` most of transformers (several seconds).
    """

    def __init__(self, fullname: str, action) -> None:
        self.fullname, self.action = fullname, action

    def find_spec(self, fullname, path, target=None):
        if fullname != self.fullname:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        for finder in sys.meta_path:
            spec = finder.find_spec(fullname, path, target) if hasattr(finder, 'find_spec') else None
            if spec is not None:
                break
        else:
            return None
        exec_module = getattr(spec.loader, 'exec_module', None)
        if exec_module is None:  # pragma: no cover - every loader of a .py file has it
            return spec
        action = self.action

        def exec_then_act(module):
            exec_module(module)
            action(module)

        spec.loader.exec_module = exec_then_act
        return spec


def after_import(fullname: str, action, ready: str) -> None:
    """Run ``action(module)`` on module ``fullname`` now if it is imported (it has the
    attribute ``ready``), else right after it is (once; repeated calls add nothing)."""
    module = sys.modules.get(fullname)
    if module is not None and hasattr(module, ready):
        action(module)
    elif not any(isinstance(f, AfterImport) and f.fullname == fullname for f in sys.meta_path):
        sys.meta_path.insert(0, AfterImport(fullname, action))
