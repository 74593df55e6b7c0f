"""Build task models (student/teacher) from a model dict or a config path."""
from __future__ import annotations

import copy
import os.path as osp
from typing import Optional, Tuple

from mmengine.config import Config, ConfigDict
from mmengine.registry import DefaultScope
from torch import nn

TASK_SCOPES = ('mmdet', 'mmseg', 'mmpretrain')


def resolve_cfg_path(cfg_path: str) -> str:
    """Map ``'mmkd::kd/x.py'`` to this repository's ``configs/kd/x.py``.

    Other ``'pkg::'`` paths are left to mmengine (configs installed under
    ``site-packages/<pkg>/.mim/configs``). A relative local path is relative to the
    working directory here; :func:`resolve_relative_cfg_paths` makes the paths of a
    loaded config absolute first, next to the file that names them (as ``_base_``).
    """
    if cfg_path.startswith('mmkd::'):
        import mmkd
        root = osp.dirname(osp.dirname(osp.abspath(mmkd.__file__)))
        for base in (osp.join(root, 'configs'), osp.join(osp.dirname(mmkd.__file__), '.mim', 'configs')):
            candidate = osp.join(base, cfg_path[len('mmkd::'):])
            if osp.isfile(candidate):
                return candidate
        raise FileNotFoundError(f'{cfg_path!r}: no such config in mmkd')
    return cfg_path


def load_model_cfg(cfg_path: str, key: str = 'architecture') -> Tuple[dict, Optional[str]]:
    """Return ``(model_cfg, default_scope)`` of the config at ``cfg_path``.

    ``cfg_path`` is a local file or ``'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'``
    (a config shipped inside an installed OpenMMLab package).
    """
    cfg_path = resolve_cfg_path(cfg_path)
    if '::' in cfg_path:
        from mmengine.hub import get_config
        try:
            cfg = get_config(cfg_path)
        except (FileNotFoundError, ImportError, ModuleNotFoundError) as err:
            raise FileNotFoundError(
                f"{key}.cfg_path={cfg_path!r} cannot be found: {err}. Use 'package::relative/path.py' "
                'with an installed package (mmdet, mmseg, mmpretrain) or a local file.') from None
    else:
        if not osp.isfile(cfg_path):
            raise FileNotFoundError(f'{key}.cfg_path={cfg_path!r} is not a file')
        cfg = Config.fromfile(cfg_path)
    if 'model' not in cfg:
        raise KeyError(f'{key}.cfg_path={cfg_path!r} has no `model` key')
    return copy.deepcopy(cfg.model), cfg.get('default_scope')


def _registry_has(scope: str, type_name: str) -> bool:
    import importlib

    from mmengine.registry import MODELS as ROOT
    try:
        importlib.import_module(f'{scope}.registry')
    except ImportError:
        return False
    registry = ROOT._search_child(scope)
    if registry is None:
        return False
    registry.import_from_location()
    return type_name in registry.module_dict


def infer_scope(type_name: str, key: str) -> str:
    """Find which task package registers ``type_name`` (for model dicts without scope)."""
    found = [s for s in TASK_SCOPES if _registry_has(s, type_name)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise KeyError(f'{key}.type={type_name!r} is not registered in any of {TASK_SCOPES}; '
                       "give `_scope_` or use `cfg_path='mmdet::...'`")
    raise KeyError(f'{key}.type={type_name!r} is registered in several packages {found}; '
                   f"say which with `_scope_` (e.g. _scope_='{found[0]}')")


def build_task_model(cfg: dict, key: str = 'architecture') -> Tuple[nn.Module, dict]:
    """Build a student/teacher from ``cfg``; returns the model and a description.

    ``cfg`` is either a full model dict (``type=...``, optionally ``_scope_``) or
    ``dict(cfg_path=..., pretrained=False, **overrides)``. With ``pretrained=False``
    the backbone's ``init_cfg`` pretrained weights are dropped so nothing is
    downloaded. Every other key next to ``cfg_path`` is merged into the referenced
    model dict with mmengine's config-merge rules (nested dicts merge key by key,
    ``_delete_=True`` replaces a dict), e.g.
    ``dict(cfg_path='mmpretrain::resnet/resnet18_8xb32_in1k.py', head=dict(num_classes=10))``.
    ``model_override=dict(...)`` is accepted as the same thing, spelled as one key.
    A relative ``cfg_path`` is resolved against the config file that names it when the
    config went through :func:`resolve_relative_cfg_paths` (the tools do that).
    """
    from mmengine.registry import MODELS as ROOT
    if isinstance(cfg, nn.Module):
        return cfg, {'scope': None}
    if not isinstance(cfg, dict):
        raise TypeError(f'{key} must be a model dict or dict(cfg_path=...), got {type(cfg).__name__}')
    cfg = copy.deepcopy(dict(cfg))
    scope = cfg.pop('_scope_', None)
    if 'cfg_path' in cfg:
        cfg_path = cfg.pop('cfg_path')
        pretrained = cfg.pop('pretrained', False)
        overrides = cfg.pop('model_override', None) or {}
        if not isinstance(overrides, dict):
            raise TypeError(f'{key}.model_override must be a dict, got {overrides!r}')
        model_cfg, cfg_scope = load_model_cfg(cfg_path, key)
        # the keys left next to cfg_path override the referenced model (mmengine merge)
        model_cfg = merge_model_cfg(model_cfg, dict(overrides, **cfg), key)
        # precedence: the outer dict's _scope_, the model's own _scope_, the file's scope
        scope = scope or model_cfg.pop('_scope_', None) or cfg_scope
        if not pretrained:
            _drop_pretrained(model_cfg)
        cfg = model_cfg
    if 'type' not in cfg:
        raise KeyError(f"{key} needs 'type' (a model dict) or 'cfg_path'")
    type_name = cfg['type']
    if scope is None and isinstance(type_name, str) and '.' not in type_name:
        current = DefaultScope.get_current_instance()
        cur = current.scope_name if current is not None else None
        if cur in TASK_SCOPES and _registry_has(cur, type_name):
            scope = cur
        else:
            scope = infer_scope(type_name, key)
    registry = (ROOT._search_child(scope) if scope else None) or ROOT
    # ConfigDict (recursively), as the Runner passes it: task models such as mmdet's
    # heads read their train/test cfg by attribute (`test_cfg.min_bbox_size`).
    cfg = ConfigDict(cfg)
    with DefaultScope.overwrite_default_scope(scope):
        model = registry.build(cfg)
    return model, {'scope': scope}


def merge_model_cfg(base: dict, overrides: dict, key: str = 'architecture') -> dict:
    """Merge ``overrides`` into the model dict ``base`` by mmengine's config rules.

    Nested dicts merge key by key; a dict with ``_delete_=True`` replaces the one it
    overrides; other values (lists included) replace. Returns a new plain dict.
    """
    if not overrides:
        return copy.deepcopy(dict(base))
    overrides = copy.deepcopy(_plain(overrides))
    # mmengine honours _delete_ in nested dicts only; at the top it replaces the model
    base = {} if overrides.pop('_delete_', False) else copy.deepcopy(_plain(base))
    merged = Config._merge_a_into_b(overrides, base)
    if 'type' not in merged:
        raise KeyError(f'{key}: the overrides next to cfg_path removed the model type '
                       f'(keys after the merge: {sorted(merged)})')
    return merged


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _cfg_path_literals(path: str) -> list:
    """Every string given to a ``cfg_path=`` keyword or ``'cfg_path':`` key in ``path``."""
    import ast
    try:
        with open(path, encoding='utf-8') as f:
            tree = ast.parse(f.read(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == 'cfg_path':
            value = node.value
        elif isinstance(node, ast.Dict):
            value = next((v for k, v in zip(node.keys, node.values)
                          if isinstance(k, ast.Constant) and k.value == 'cfg_path'), None)
        else:
            continue
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            found.append(value.value)
    return found


def _base_files(path: str) -> list:
    """``path`` and its local ``_base_`` files, the child first (depth-first)."""
    import ast
    out, todo = [], [osp.abspath(path)]
    while todo:
        current = todo.pop(0)
        if current in out or not osp.isfile(current):
            continue
        out.append(current)
        try:
            with open(current, encoding='utf-8') as f:
                tree = ast.parse(f.read(), filename=current)
        except (OSError, SyntaxError, ValueError):
            continue
        for node in tree.body:
            if (isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == '_base_' for t in node.targets)):
                try:
                    bases = ast.literal_eval(node.value)
                except ValueError:
                    continue
                for base in [bases] if isinstance(bases, str) else list(bases):
                    if isinstance(base, str) and '::' not in base:
                        todo.append(osp.normpath(osp.join(osp.dirname(current), base)))
    return out


def resolve_relative_cfg_paths(cfg: Config) -> Config:
    """Make every relative ``cfg_path`` in ``cfg.model`` absolute, next to the file naming it.

    ``_base_`` paths are relative to the file that lists them; ``cfg_path`` follows the
    same rule: the config file (or inherited ``_base_`` file) whose text holds the
    literal decides the directory, the child before its bases. A relative path that no
    file spells (e.g. built by string formatting) is left to the working directory.
    Modifies ``cfg`` in place and returns it.
    """
    filename = getattr(cfg, 'filename', None)
    if not filename or 'model' not in cfg:
        return cfg
    owners = {}
    for path in _base_files(filename):
        for literal in _cfg_path_literals(path):
            owners.setdefault(literal, osp.dirname(path))

    def visit(node):
        if isinstance(node, dict):
            value = node.get('cfg_path')
            if (isinstance(value, str) and '::' not in value and not osp.isabs(value)
                    and value in owners):
                node['cfg_path'] = osp.normpath(osp.join(owners[value], value))
            for child in node.values():
                visit(child)
        elif isinstance(node, (list, tuple)):
            for child in node:
                visit(child)

    visit(cfg.model)
    return cfg


def build_in_scope(cfg: dict, scope: Optional[str]) -> nn.Module:
    """Build any model-registry config in ``scope`` (the task package's)."""
    from mmengine.registry import MODELS as ROOT
    cfg = dict(cfg)
    scope = cfg.pop('_scope_', None) or scope
    registry = (ROOT._search_child(scope) if scope else None) or ROOT
    with DefaultScope.overwrite_default_scope(scope):
        return registry.build(cfg)


def _drop_pretrained(model_cfg: dict) -> None:
    """Remove pretrained-weight init configs recursively (no download in random-init builds)."""
    if isinstance(model_cfg, dict):
        init_cfg = model_cfg.get('init_cfg')
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            model_cfg['init_cfg'] = None
        if isinstance(model_cfg.get('pretrained'), str):
            model_cfg['pretrained'] = None
        for value in model_cfg.values():
            if isinstance(value, (dict, list)):
                _drop_pretrained(value)
    elif isinstance(model_cfg, list):
        for value in model_cfg:
            _drop_pretrained(value)
