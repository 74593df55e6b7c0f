"""The OpenMMLab stack imports on the installed transformers (``mmkd.utils.compat``).

mmpretrain 1.2.0 and mmdet 3.3.0 import names from ``transformers.modeling_utils`` that
transformers 4.53+ moved away (5.0 removed one); ``import mmkd`` makes them importable
there again. These tests run fresh interpreters, so the import order is the real one:
they fail when the shim stops working (the stack does not import) and when it stops
being needed (the stack imports without it, or mmpretrain/mmdet no longer import a
name it supplies), saying which.
"""
import glob
import importlib.util
import os
import os.path as osp
import re
import subprocess
import sys
from importlib import metadata

import pytest

from mmkd.utils import compat

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
NAMES = [name for name, _ in compat._MOVED_MODELING_UTILS_NAMES]


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True,
                          text=True, timeout=900, env=dict(os.environ, OMP_NUM_THREADS='1'))


@pytest.fixture(scope='module')
def without_mmkd():
    """What the plain stack does: which names transformers has, whether mmdet imports."""
    proc = _python(
        'import transformers.modeling_utils as mu\n'
        f'print("NATIVE", ",".join(n for n in {NAMES!r} if hasattr(mu, n)))\n'
        'try:\n'
        '    import mmdet.models\n'
        '    print("MMDET ok")\n'
        'except Exception as err:\n'
        '    print("MMDET", type(err).__name__, err)\n')
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = dict(line.split(' ', 1) for line in proc.stdout.splitlines()
                 if line.startswith(('NATIVE', 'MMDET')))
    native = [n for n in lines['NATIVE'].strip().split(',') if n]
    return native, lines['MMDET'].strip()


def test_stack_imports_on_the_installed_transformers(without_mmkd):
    native, _ = without_mmkd
    proc = _python(
        'import sys\n'
        'import mmkd\n'
        'print("LAZY", "transformers" in sys.modules)\n'
        'import mmdet.models, mmseg.models, mmpretrain.models, transformers\n'
        'import transformers.modeling_utils as mu\n'
        'from mmpretrain.registry import MODELS\n'
        'from mmdet.models.utils import vlfuse_helper\n'
        'print("VERSION", transformers.__version__)\n'
        'print("ADDED", ",".join(getattr(mu, "__mmkd_added_names__", ("?",))))\n'
        # the real multimodal classes, not mmpretrain's "install multimodal" placeholders
        'print("OFA", MODELS.get("OFA").__module__, MODELS.get("BlipCaption").__module__)\n'
        'print("GLIP", vlfuse_helper.BertConfig is not None)\n')
    assert proc.returncode == 0, (
        'import mmkd, then mmdet.models / mmseg.models / mmpretrain.models failed on '
        f'transformers {metadata.version("transformers")}: mmkd.utils.compat must supply '
        f'another moved name:\n{proc.stderr[-3000:]}')
    out = dict(line.split(' ', 1) for line in proc.stdout.splitlines() if ' ' in line)
    assert out['LAZY'] == 'False', 'import mmkd must not import transformers'
    assert out['VERSION'] == metadata.version('transformers')
    added = [n for n in out['ADDED'].split(',') if n]
    assert added == [n for n in NAMES if n not in native]
    assert out['OFA'] == ('mmpretrain.models.multimodal.ofa.ofa '
                          'mmpretrain.models.multimodal.blip.blip_caption')
    assert out['GLIP'] == 'True'  # mmdet's GLIP BERT fusion found transformers' classes


def test_shim_is_still_needed(without_mmkd):
    native, mmdet = without_mmkd
    missing = [n for n in NAMES if n not in native]
    if not missing:  # transformers <= 4.52: the shim adds nothing and nothing needs it
        assert mmdet == 'ok', mmdet
        return
    assert mmdet != 'ok', (
        f'transformers {metadata.version("transformers")} lacks {missing} in '
        'transformers.modeling_utils, yet `import mmdet.models` works without mmkd: the '
        'installed mmpretrain/mmdet no longer need them; remove the shim from '
        'mmkd/utils/compat.py')


def _imported_from_modeling_utils(package: str) -> set:
    """Names that the installed ``package`` imports from transformers.modeling_utils."""
    root = osp.dirname(importlib.util.find_spec(package).origin)
    names = set()
    for path in glob.glob(osp.join(root, '**', '*.py'), recursive=True):
        with open(path, encoding='utf-8') as f:
            text = f.read()
        for match in re.finditer(r'from transformers\.modeling_utils import (\([^)]*\)|[^\n]*)',
                                 text):
            body = match.group(1).strip('()').replace('\\', ' ')
            names.update(n.split(' as ')[0].strip() for n in body.split(',') if n.strip())
    return names


def test_every_supplied_name_is_still_imported_by_the_stack():
    used = _imported_from_modeling_utils('mmpretrain') | _imported_from_modeling_utils('mmdet')
    stale = [n for n in NAMES if n not in used]
    assert not stale, (f'mmpretrain {metadata.version("mmpretrain")} / mmdet '
                       f'{metadata.version("mmdet")} no longer import {stale} from '
                       'transformers.modeling_utils: drop them from '
                       'mmkd.utils.compat._MOVED_MODELING_UTILS_NAMES')


def test_supplied_names_are_transformers_own_objects():
    import transformers.modeling_utils as mu
    from transformers import pytorch_utils
    from transformers.configuration_utils import PretrainedConfig
    from transformers.generation import GenerationMixin
    assert mu.GenerationMixin is GenerationMixin
    assert mu.PretrainedConfig is PretrainedConfig
    assert mu.apply_chunking_to_forward is pytorch_utils.apply_chunking_to_forward
    assert mu.prune_linear_layer is pytorch_utils.prune_linear_layer
    own = getattr(pytorch_utils, 'find_pruneable_heads_and_indices', None)
    if own is not None:  # transformers < 5
        assert mu.find_pruneable_heads_and_indices is own
    else:
        with pytest.raises(NotImplementedError, match='removed in transformers 5'):
            mu.find_pruneable_heads_and_indices([0], 2, 4, set())
