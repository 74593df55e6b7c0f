"""Sphinx extension of the mmkd docs: model-zoo pages, API stubs and repository links.

Everything here is generated from the repository at build time, so a new method
folder (``configs/<method>/README.md``), a new method page (``docs/methods/*.md``) or
a new ``mmkd`` sub-package shows up in the docs without editing any index:

* ``docs/zoo/<method>.md``: a copy of ``configs/<method>/README.md`` whose relative
  links are rewritten for their new place; ``docs/zoo/index.md``: a table of every
  model of ``model-index.yml`` (name, config, data set, metrics).
* ``docs/api/generated/<package>.md``: one ``automodule`` page per ``mmkd``
  package (its ``__all__`` is documented).
* Links in any page to ``configs/<method>/README.md`` point to the zoo page; links
  to other repository files (configs, tools) become download links.

Generated folders are git-ignored and rewritten only when their content changes.
"""
from __future__ import annotations

import glob
import os
import os.path as osp
import re
from typing import Dict, List, Optional

import yaml

DOCS = osp.dirname(osp.dirname(osp.abspath(__file__)))
ROOT = osp.dirname(DOCS)
ZOO = osp.join(DOCS, 'zoo')
API_GEN = osp.join(DOCS, 'api', 'generated')

# Markdown inline links and images: [text](target) / ![alt](target "title").
_LINK = re.compile(r'(!?\[[^\]\n]*\])\(([^)\s]+)((?:\s+"[^"]*")?)\)')
_FENCE = re.compile(r'^(```|~~~)')
# Packages documented on their own page. ``mmkd`` and ``mmkd.models`` only re-export
# what their sub-packages define (documenting them too would duplicate every object).
_SKIP_PACKAGES = {'mmkd', 'mmkd.models'}
_EXTRA_MODULES = ['mmkd.registry']


def _write_if_changed(path: str, text: str) -> None:
    if osp.isfile(path):
        with open(path, encoding='utf-8') as f:
            if f.read() == text:
                return
    os.makedirs(osp.dirname(path), exist_ok=True)
    tmp = f'{path}.{os.getpid()}.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        f.write(text)
    os.replace(tmp, path)  # concurrent builds never see half a page


def _remove_stale(folder: str, keep: List[str]) -> None:
    for path in glob.glob(osp.join(folder, '*.md')):
        if osp.basename(path) not in keep:
            os.remove(path)


def method_folders() -> List[str]:
    """Names of ``configs/<name>/`` folders that have a README.md."""
    return sorted(
        osp.basename(osp.dirname(p)) for p in glob.glob(osp.join(ROOT, 'configs', '*', 'README.md')))


def rewrite_target(target: str, src_dir: str, page_dir: str) -> str:
    """Rewrite one link target of a Markdown file at ``src_dir`` shown at ``page_dir``.

    Returns the target unchanged when it is external, an in-page anchor, or does not
    exist (Sphinx then reports the broken link as a warning, which fails the build).
    """
    if '://' in target or target.startswith(('#', 'mailto:')):
        return target
    path, sep, frag = target.partition('#')
    if not path:
        return target
    abs_path = osp.normpath(osp.join(src_dir, path))
    configs = osp.join(ROOT, 'configs')
    if (osp.dirname(osp.dirname(abs_path)) == configs and osp.basename(abs_path) == 'README.md'
            and osp.isfile(abs_path)):
        folder = osp.basename(osp.dirname(abs_path))
        abs_path = osp.join(ZOO, f'{folder}.md')
    elif osp.dirname(abs_path) == configs and osp.isfile(osp.join(abs_path, 'README.md')):
        abs_path = osp.join(ZOO, f'{osp.basename(abs_path)}.md')  # a link to the folder itself
    elif not osp.exists(abs_path):
        return target
    return osp.relpath(abs_path, page_dir).replace(os.sep, '/') + sep + frag


def rewrite_links(text: str, src_dir: str, page_dir: str) -> str:
    """Apply :func:`rewrite_target` to every link outside fenced code blocks."""
    out, in_fence = [], False
    for line in text.splitlines(keepends=True):
        if _FENCE.match(line.lstrip()):
            in_fence = not in_fence
        if not in_fence and '](' in line:
            line = _LINK.sub(
                lambda m: f'{m.group(1)}({rewrite_target(m.group(2), src_dir, page_dir)}{m.group(3)})',
                line)
        out.append(line)
    return ''.join(out)


def _load_models() -> List[Dict]:
    """Every model of the metafiles imported by ``model-index.yml``, with its collection."""
    with open(osp.join(ROOT, 'model-index.yml')) as f:
        index = yaml.safe_load(f)
    models = []
    for rel in index.get('Import', []):
        with open(osp.join(ROOT, rel)) as f:
            meta = yaml.safe_load(f) or {}
        for model in meta.get('Models') or []:
            models.append(dict(model, _folder=osp.basename(osp.dirname(rel))))
    return models


def _metric_text(model: Dict) -> str:
    parts = []
    for result in model.get('Results') or []:
        metrics = ', '.join(f'{k} {v}' for k, v in (result.get('Metrics') or {}).items())
        parts.append(f"{result.get('Dataset', '?')}: {metrics}")
    return '; '.join(parts) or '-'


def _cell(text) -> str:
    return str(text).replace('|', '\\|').replace('\n', ' ')


def generate_zoo() -> None:
    folders = method_folders()
    for folder in folders:
        src = osp.join(ROOT, 'configs', folder, 'README.md')
        with open(src, encoding='utf-8') as f:
            text = f.read()
        text = rewrite_links(text, osp.dirname(src), ZOO)
        header = (f'<!-- generated from configs/{folder}/README.md by docs/_ext/mmkd_docs.py; '
                  'edit that file -->\n\n')
        _write_if_changed(osp.join(ZOO, f'{folder}.md'), header + text)

    lines = [
        '<!-- generated from model-index.yml by docs/_ext/mmkd_docs.py -->', '',
        '# Model zoo', '',
        'Every model of `model-index.yml` (the metafiles of `configs/*/`), as `mim search mmkd`',
        'lists them. Demo figures were measured on the embedded data sets with the command in',
        "each folder's page; real-scale configs carry the paper's figures or none.", '',
        '| folder | model | config | results |', '|---|---|---|---|',
    ]
    for model in _load_models():
        config = model.get('Config', '')
        cfg_link = rewrite_target(osp.join('..', '..', config), ZOO, ZOO) if config else '-'
        folder = model['_folder']
        # a folder without a README (work in progress) has no page to link to
        folder_cell = f'[{folder}]({folder}.md)' if folder in folders else f'`{folder}`'
        lines.append('| {f} | {n} | [{c}]({link}) | {r} |'.format(
            f=folder_cell, n=_cell(model.get('Name', '?')), c=osp.basename(config),
            link=cfg_link, r=_cell(_metric_text(model))))
    lines += ['', '```{toctree}', ':maxdepth: 1', ':hidden:', '']
    lines += folders
    lines += ['```', '']
    _write_if_changed(osp.join(ZOO, 'index.md'), '\n'.join(lines))
    _remove_stale(ZOO, [f'{f}.md' for f in folders] + ['index.md'])


def api_modules() -> List[str]:
    """Every package under ``mmkd/`` (found on disk, so one that fails to import is not
    skipped silently: autodoc then reports the import error), plus ``_EXTRA_MODULES``."""
    pkg_root = osp.join(ROOT, 'mmkd')
    names = []
    for dirpath, dirnames, filenames in os.walk(pkg_root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(('.', '_')))
        if '__init__.py' in filenames:
            rel = osp.relpath(dirpath, ROOT).replace(os.sep, '.')
            names.append(rel)
    return sorted(set(names) - _SKIP_PACKAGES) + _EXTRA_MODULES


def api_members(name: str, documented: List[str]) -> Optional[List[str]]:
    """``__all__`` of module ``name`` minus what a documented sub-package also exports
    (each object is documented once, under its most specific package). None when the
    module has no ``__all__`` or does not import (autodoc then documents or reports it)."""
    import importlib
    try:
        module = importlib.import_module(name)
        children = [importlib.import_module(d) for d in documented if d.startswith(name + '.')]
    except Exception:  # noqa: BLE001  autodoc reports the import error as a warning
        return None
    if getattr(module, '__all__', None) is None:
        return None
    return [n for n in module.__all__
            if not any(n in getattr(c, '__all__', ()) and getattr(c, n, None) is getattr(module, n, None)
                       for c in children)]


def generate_api() -> None:
    pages = []
    modules = api_modules()
    for name in modules:
        members = api_members(name, modules)
        if members == []:
            continue  # everything it exports is documented under a sub-package
        option = ':members:' if members is None else f':members: {", ".join(members)}'
        text = (f'<!-- generated by docs/_ext/mmkd_docs.py -->\n\n# `{name}`\n\n'
                f'```{{eval-rst}}\n.. automodule:: {name}\n   {option}\n```\n')
        _write_if_changed(osp.join(API_GEN, f'{name}.md'), text)
        pages.append(f'{name}.md')
    _remove_stale(API_GEN, pages)


def _on_config_inited(app, config) -> None:
    generate_zoo()
    generate_api()


def _on_source_read(app, docname: str, source: List[str]) -> None:
    if docname.startswith('zoo/') or docname.startswith('api/generated/'):
        return  # generated with their links already rewritten
    page_dir = osp.dirname(osp.join(app.srcdir, docname))
    source[0] = rewrite_links(source[0], page_dir, page_dir)


def setup(app):
    app.connect('config-inited', _on_config_inited)
    app.connect('source-read', _on_source_read)
    return {'version': '1.0', 'parallel_read_safe': True, 'parallel_write_safe': True}
