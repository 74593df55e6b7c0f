"""Sphinx configuration of the mmkd documentation.

Build: ``make docs`` (HTML in docs/_build/html; warnings are errors). Offline: no
intersphinx, no theme or extension that fetches anything.
"""
import os
import os.path as osp
import sys

DOCS = osp.dirname(osp.abspath(__file__))
ROOT = osp.dirname(DOCS)
sys.path.insert(0, ROOT)  # the checkout's mmkd, also when it is not installed
sys.path.insert(0, osp.join(DOCS, '_ext'))
os.environ.setdefault('OMP_NUM_THREADS', '1')

from mmkd.version import __version__  # noqa: E402

project = 'mmkd'
author = 'mmkd contributors'
copyright = 'mmkd contributors'
version = release = __version__

extensions = [
    'myst_parser',
    'sphinx.ext.autodoc',
    'sphinx.ext.napoleon',
    'sphinx.ext.mathjax',
    'sphinx.ext.viewcode',
    'mmkd_docs',  # docs/_ext/mmkd_docs.py: zoo pages, API stubs, repository links
]
source_suffix = {'.md': 'markdown', '.rst': 'restructuredtext'}
root_doc = 'index'
exclude_patterns = ['_build', '_ext', 'benchmarks/*.json', '**/README.md']

myst_enable_extensions = ['dollarmath', 'amsmath', 'colon_fence', 'deflist']
myst_heading_anchors = 3  # `page.md#a-heading` links work as on GitHub

autodoc_member_order = 'bysource'
autodoc_typehints = 'signature'
autodoc_default_options = {'show-inheritance': True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = 'alabaster'
html_title = f'mmkd {release}'
html_static_path = []
html_show_sourcelink = False
