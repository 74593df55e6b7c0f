"""The package layout keeps its layers: an import graph of ``mmkd/`` read from the source.

Every module under ``mmkd/`` is parsed (no import runs): its ``import`` statements at
module level and inside functions, relative ones resolved, ``from pkg import name``
counted as an import of ``pkg.name`` when that is a module, and
``importlib.import_module('...')`` / ``__import__('...')`` with a literal name. Checked:

(a) nothing under ``mmkd/models`` imports ``mmkd.datasets`` (models never import data);
(b) nothing under ``mmkd/datasets`` imports ``mmkd.models``;
(c) the module-level import graph inside ``mmkd`` has no cycle (the failure names it),
    nor does the graph that also counts the imports inside functions;
(d) every bare ``type='X'`` a shipped config names (no ``.``, no scope prefix) is
    registered in a registry of mmkd, mmengine or the task packages, or is one of
    the tokenizers mmkd builds itself (``mmkd.text``). ``tests/test_configs.py`` builds
    each config's model, but not its data pipelines, metrics or hooks; this catches a
    rename in any of them in seconds.
"""
from __future__ import annotations

import ast
import glob
import os.path as osp
from typing import Dict, List, Set, Tuple

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PKG = osp.join(ROOT, 'mmkd')


def _module_name(path: str) -> str:
    rel = osp.relpath(path, ROOT)[:-3].replace(osp.sep, '.')
    return rel[:-len('.__init__')] if rel.endswith('.__init__') else rel


def _all_modules() -> Dict[str, str]:
    return {_module_name(p): p for p in sorted(glob.glob(osp.join(PKG, '**', '*.py'), recursive=True))}


MODULES = _all_modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == 'TYPE_CHECKING') or (
        isinstance(test, ast.Attribute) and test.attr == 'TYPE_CHECKING')


class _Imports(ast.NodeVisitor):
    """Collects ``(target, lineno, module_level)`` of one module."""

    def __init__(self, module: str, is_package: bool) -> None:
        self.module, self.is_package = module, is_package
        self.found: List[Tuple[str, int, bool]] = []
        self._depth = 0  # > 0 inside a function (runs later) or an `if TYPE_CHECKING:`

    def _base(self, level: int, name: str) -> str:
        if level == 0:
            return name
        parts = self.module.split('.')
        if not self.is_package:
            parts = parts[:-1]
        parts = parts[:len(parts) - (level - 1)]
        return '.'.join(parts + ([name] if name else []))

    def _add(self, target: str, node: ast.AST) -> None:
        self.found.append((target, node.lineno, self._depth == 0))

    def _nested(self, node: ast.AST) -> None:
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _nested

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            self._depth += 1
            for child in node.body:
                self.visit(child)
            self._depth -= 1
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = self._base(node.level, node.module or '')
        for alias in node.names:
            sub = f'{base}.{alias.name}'
            self._add(sub if sub in MODULES else base, node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, 'id', None)
        if (name in ('import_module', '__import__') and node.args
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            self.found.append((node.args[0].value, node.lineno, False))  # runs when called
        self.generic_visit(node)


def _imports_of(module: str) -> List[Tuple[str, int, bool]]:
    path = MODULES[module]
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), path)
    visitor = _Imports(module, path.endswith('__init__.py'))
    visitor.visit(tree)
    return visitor.found


IMPORTS = {module: _imports_of(module) for module in MODULES}


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + '.')


def _crossings(src_pkg: str, dst_pkg: str) -> List[str]:
    return [f'{MODULES[m]}:{line}: {m} imports {target}' + ('' if top else ' (inside a function)')
            for m, found in IMPORTS.items() if _within(m, src_pkg)
            for target, line, top in found if _within(target, dst_pkg)]


def test_the_graph_sees_the_packages():
    for package in ('mmkd.models', 'mmkd.datasets', 'mmkd.text', 'mmkd.utils', 'mmkd.engine'):
        assert package in MODULES, f'{package} not found under {PKG}'
    assert sum(len(found) for found in IMPORTS.values()) > 200


def test_models_never_import_datasets():
    bad = _crossings('mmkd.models', 'mmkd.datasets')
    assert not bad, ('mmkd/models must not import mmkd.datasets (put what both need in a '
                     'neutral module such as mmkd.text):\n' + '\n'.join(bad))


def test_datasets_never_import_models():
    bad = _crossings('mmkd.datasets', 'mmkd.models')
    assert not bad, 'mmkd/datasets must not import mmkd.models:\n' + '\n'.join(bad)


def _module_graph(module_level_only: bool = True) -> Dict[str, Set[str]]:
    graph = {m: set() for m in MODULES}
    for module, found in IMPORTS.items():
        for target, _, top in found:
            if (top or not module_level_only) and target in MODULES and target != module:
                graph[module].add(target)
    return graph


def _cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """One cycle path per strongly connected component of more than one module."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    components: List[List[str]] = []

    def strongconnect(v: str) -> None:  # Tarjan; the graph is small enough to recurse
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)

    paths = []
    for comp in components:
        members, start = set(comp), comp[0]
        # breadth-first from start back to start inside the component: a shortest cycle
        prev: Dict[str, str] = {}
        frontier, seen, end = [start], {start}, None
        while frontier and end is None:
            nxt = []
            for v in frontier:
                for w in sorted(graph[v] & members):
                    if w == start:
                        end = v
                        break
                    if w not in seen:
                        seen.add(w)
                        prev[w] = v
                        nxt.append(w)
                if end is not None:
                    break
            frontier = nxt
        path = [end]
        while path[-1] != start:
            path.append(prev[path[-1]])
        paths.append([start] + path[::-1][1:] + [start])
    return paths


def test_cycle_finder_reports_the_path():
    graph = {'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}
    assert _cycles(graph) == [['a', 'b', 'c', 'a']]
    assert _cycles({'a': {'b'}, 'b': set()}) == []


def test_module_level_imports_have_no_cycle():
    cycles = _cycles(_module_graph())
    assert not cycles, 'module-level import cycles inside mmkd:\n' + '\n'.join(
        ' -> '.join(path) for path in cycles)


def test_no_cycle_even_through_imports_inside_functions():
    # a lazy import only hides a cycle (utils/checkpoint.py <-> utils/compat.py had one)
    cycles = _cycles(_module_graph(module_level_only=False))
    assert not cycles, 'import cycles inside mmkd (counting imports inside functions):\n' + (
        '\n'.join(' -> '.join(path) for path in cycles))


# --------------------------------------------------------------- (d) config type names
def _config_types() -> Dict[str, str]:
    """Bare ``type='X'`` literals of configs/**/*.py -> the first file naming each."""
    names: Dict[str, str] = {}
    for path in sorted(glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)):
        with open(path, encoding='utf-8') as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            values = []
            if isinstance(node, ast.Call) and getattr(node.func, 'id', None) == 'dict':
                values = [kw.value for kw in node.keywords if kw.arg == 'type']
            elif isinstance(node, ast.Dict):
                values = [v for k, v in zip(node.keys, node.values)
                          if isinstance(k, ast.Constant) and k.value == 'type']
            for value in values:
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    name = value.value
                    if '.' not in name and '::' not in name:
                        names.setdefault(name, f'{osp.relpath(path, ROOT)}:{value.lineno}')
    return names


def _registered_names() -> Set[str]:
    import importlib

    from mmengine import registry as mmengine_registry
    from mmengine.registry import Registry

    registries = [obj for obj in vars(mmengine_registry).values() if isinstance(obj, Registry)]
    for package in ('mmkd', 'mmdet', 'mmseg', 'mmpretrain'):
        importlib.import_module(f'{package}.utils').register_all_modules(init_default_scope=False)
        module = importlib.import_module(f'{package}.registry')
        registries += [obj for obj in vars(module).values() if isinstance(obj, Registry)]
    names = set()
    for reg in registries:
        names.update(reg.module_dict)
    # built by mmkd itself from dict(type=...), not through a registry
    from mmkd.text.caption_tokenizers import TOKENIZERS
    from mmkd.text.chat_tokenizers import CHAT_TOKENIZERS
    return names | set(TOKENIZERS) | set(CHAT_TOKENIZERS)


def test_every_config_type_name_is_registered():
    pytest.importorskip('mmdet')
    pytest.importorskip('mmseg')
    pytest.importorskip('mmpretrain')
    wanted = _config_types()
    assert len(wanted) > 50, f'found only {len(wanted)} type names in configs/'
    known = _registered_names()
    missing = {name: where for name, where in wanted.items() if name not in known}
    assert not missing, 'config type names no registry resolves:\n' + '\n'.join(
        f'{where}: {name!r}' for name, where in sorted(missing.items()))
