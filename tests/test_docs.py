"""The documentation builds offline without a single Sphinx warning, and links resolve."""
import glob
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(ROOT, 'docs', '_ext'))

import mmkd_docs  # noqa: E402

# [text](target) and ![alt](target "title"); targets with a scheme are external.
LINK = re.compile(r'!?\[[^\]\n]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)')


def local_links(path):
    """(line number, target) of every relative link outside fenced code blocks."""
    links, in_fence = [], False
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            if line.lstrip().startswith(('```', '~~~')):
                in_fence = not in_fence
            if in_fence:
                continue
            for target in LINK.findall(line):
                if '://' in target or target.startswith(('#', 'mailto:')):
                    continue
                links.append((lineno, target))
    return links


def broken_links(path):
    base = osp.dirname(path)
    return [f'{osp.relpath(path, ROOT)}:{n}: {t}' for n, t in local_links(path)
            if not osp.exists(osp.join(base, t.split('#', 1)[0]))]


def test_readme_links_resolve():
    readme = osp.join(ROOT, 'README.md')
    links = local_links(readme)
    # the front page's method table links every method folder's README
    assert sum(t.startswith('configs/') for _, t in links) >= 9, links
    assert broken_links(readme) == []


def test_config_readme_links_resolve():
    readmes = glob.glob(osp.join(ROOT, 'configs', '*', 'README.md'))
    assert readmes
    assert [b for r in readmes for b in broken_links(r)] == []


def test_link_checker_can_fail(tmp_path):
    page = tmp_path / 'page.md'
    page.write_text('[ok](page.md) [gone](missing.md#x) [web](https://x.org) `[not](a.md)`\n'
                    '```\n[in a code block](nope.md)\n```\n')
    assert [t for _, t in local_links(str(page))] == ['page.md', 'missing.md#x', 'a.md']
    assert [b.rsplit(': ', 1)[1] for b in broken_links(str(page))] == ['missing.md#x', 'a.md']


def test_rewrite_targets():
    methods = osp.join(ROOT, 'docs', 'methods')
    zoo = osp.join(ROOT, 'docs', 'zoo')
    kd_dir = osp.join(ROOT, 'configs', 'kd')
    # a docs page linking a config README goes to the generated zoo page
    assert mmkd_docs.rewrite_target('../../configs/kd/README.md#idea', methods, methods) == \
        '../zoo/kd.md#idea'
    # a README's link to a sibling config becomes a (download) link valid from docs/zoo
    cfg = 'kd_logits_resnet18-w32_resnet18-w8_digits-10pct_demo.py'
    assert mmkd_docs.rewrite_target(cfg, kd_dir, zoo) == f'../../configs/kd/{cfg}'
    assert mmkd_docs.rewrite_target('../mgd/README.md', kd_dir, zoo) == 'mgd.md'
    assert mmkd_docs.rewrite_target('../dmae', kd_dir, zoo) == 'dmae.md'
    # external, anchors and missing files are left for Sphinx to judge
    for target in ('https://arxiv.org/abs/1503.02531', '#results', 'no_such_file.py'):
        assert mmkd_docs.rewrite_target(target, kd_dir, zoo) == target
    text = '[a](../mgd/README.md)\n```\n[b](../mgd/README.md)\n```\n'
    assert mmkd_docs.rewrite_links(text, kd_dir, zoo) == \
        '[a](mgd.md)\n```\n[b](../mgd/README.md)\n```\n'


def test_every_method_folder_has_a_method_page_or_is_a_task_folder():
    """Each method folder of configs/ is documented by a page in docs/methods/.

    A page may cover several folders (it then names each folder's README); folders of
    plain task models are not methods.
    """
    pages = glob.glob(osp.join(ROOT, 'docs', 'methods', '*.md'))
    text = ''.join(open(p, encoding='utf-8').read() for p in pages)
    folders = [f for f in mmkd_docs.method_folders() if f != 'task_models']
    documented = [f for f in folders if osp.isfile(osp.join(ROOT, 'docs', 'methods', f'{f}.md'))
                  or f'configs/{f}/README.md' in text]
    # new folders added by work in progress may not have a page yet: at least those
    # that existed when the docs were written must
    for folder in ('kd', 'dkd', 'fitnet', 'cwd', 'mgd', 'acam_kd', 'dmae', 'g2sd', 'tinyclip',
                   'mst_distill'):
        assert folder in documented, f'configs/{folder} has no page in docs/methods/'


@pytest.mark.slow
def test_docs_build_without_warnings(tmp_path):
    pytest.importorskip('sphinx', reason='requirements/docs.txt')
    pytest.importorskip('myst_parser', reason='requirements/docs.txt')
    out = tmp_path / 'html'
    cmd = [sys.executable, '-m', 'sphinx', '-b', 'html', '-W', '--keep-going', '-q',
           osp.join(ROOT, 'docs'), str(out), '-d', str(tmp_path / 'doctrees')]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env=dict(os.environ, OMP_NUM_THREADS='2'))
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f'Sphinx warnings (each one fails the build):\n{log[-8000:]}'
    assert 'WARNING' not in log and 'ERROR' not in log, log[-8000:]

    for page in ('index', 'get_started', 'zoo/index', 'api/index',
                 'api/generated/mmkd.models.losses', 'api/generated/mmkd.models.algorithms'):
        assert (out / f'{page}.html').is_file(), page
    for md in glob.glob(osp.join(ROOT, 'docs', 'methods', '*.md')) + glob.glob(
            osp.join(ROOT, 'docs', 'user_guides', '*.md')):
        rel = osp.relpath(md, osp.join(ROOT, 'docs'))[:-3]
        assert (out / f'{rel}.html').is_file(), rel
    for folder in mmkd_docs.method_folders():
        assert (out / 'zoo' / f'{folder}.html').is_file(), folder
    # the API reference holds the docstrings, the zoo the metafile figures
    losses = (out / 'api' / 'generated' / 'mmkd.models.losses.html').read_text()
    assert 'mmkd.models.losses.KLDivergence' in losses and 'Hinton' in losses
    assert '99.44' in (out / 'zoo' / 'index.html').read_text()
