"""OpenMMLab's ``mim`` CLI sees mmkd: it lists the model zoo and trains/tests a config by name.

``mim`` finds a package's configs, tools and model index under ``<package>/.mim``; setup.py
makes that folder (symlinks for an editable install, copies in a wheel).
"""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import yaml

from .cli import ROOT

pytest.importorskip('mim', reason='openmim is installed by requirements/docs.txt')

KD_CFG = 'configs/kd/kd_logits_resnet18-w32_resnet18-w8_digits-10pct_demo.py'


def run_mim(*args, cwd, timeout=300, expect_fail=False):
    env = dict(os.environ, OMP_NUM_THREADS='2')
    proc = subprocess.run([sys.executable, '-m', 'mim', *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)
    out = proc.stdout + proc.stderr
    if expect_fail:
        assert proc.returncode != 0, f'mim {" ".join(args)} succeeded:\n{out[-5000:]}'
    else:
        assert proc.returncode == 0, f'mim {" ".join(args)} failed:\n{out[-5000:]}'
    return out


def zoo_models():
    models = []
    for path in sorted(glob.glob(osp.join(ROOT, 'configs', '*', 'metafile.yml'))):
        with open(path) as f:
            models += [(osp.relpath(path, ROOT), m) for m in yaml.safe_load(f).get('Models') or []]
    return models


def zoo_model_names():
    return [m['Name'] for _, m in zoo_models()]


def test_mim_layout_exists():
    import mmkd
    mim_dir = osp.join(osp.dirname(mmkd.__file__), '.mim')
    for name in ('configs', 'tools', 'model-index.yml'):
        assert osp.exists(osp.join(mim_dir, name)), (
            f'{mim_dir}/{name} is missing: reinstall mmkd (`make install`, or '
            '`pip install --no-build-isolation --no-use-pep517 -e .`), setup.py creates it')
    assert osp.isfile(osp.join(mim_dir, 'tools', 'train.py'))


def test_mim_list_and_search(tmp_path):
    out = run_mim('list', cwd=str(tmp_path))
    assert any(line.split()[:1] == ['mmkd'] for line in out.splitlines()), out

    json_path = str(tmp_path / 'zoo.json')
    run_mim('search', 'mmkd', '--json', json_path, cwd=str(tmp_path))
    with open(json_path) as f:
        zoo = json.load(f)  # pandas' column-oriented JSON: {field: {model name: value}}
    expected = zoo_model_names()
    assert expected, 'no metafile models found'
    assert sorted(zoo['config']) == sorted(expected)
    name = 'kd_logits_resnet18-w32_resnet18-w8_digits-10pct_demo'
    assert zoo['config'][name] == KD_CFG
    # the metric of the README's main demo, as the metafile states it
    assert zoo['digits (10% labels)/top_1_accuracy'][name] == 99.44

    out = run_mim('search', 'mmkd', '--valid-config', cwd=str(tmp_path))
    assert 'mgd_fpn_retinanet-r18_retinanet-r18-w16_shapes_demo' in out


@pytest.mark.slow
def test_mim_train_and_test(tmp_path):
    # Run outside the checkout: mim does not find `configs/kd/...` relative to the cwd and
    # falls back to the config shipped in mmkd/.mim/configs (and mmkd/.mim/tools/train.py).
    work = tmp_path / 'work'
    opts = ['--cfg-options', 'model.teacher_ckpt=None', 'train_cfg.val_interval=2',
            'default_hooks.logger.interval=1', 'train_dataloader.batch_size=8']
    out = run_mim('train', 'mmkd', KD_CFG, '--work-dir', str(work), *opts, 'train_cfg.max_iters=2',
                  cwd=str(tmp_path))
    assert 'we find the config file in codebase mmkd' in out
    assert osp.join('.mim', 'tools', 'train.py') in out
    assert 'distill.loss_kd' in out and 'Training finished successfully' in out
    ckpt = work / 'iter_2.pth'
    assert ckpt.is_file()

    out = run_mim('test', 'mmkd', KD_CFG, '--checkpoint', str(ckpt),
                  '--cfg-options', 'model.teacher_ckpt=None', cwd=str(tmp_path))
    assert 'accuracy/top1' in out


def test_metafile_weights_are_downloadable_urls_or_absent():
    """``mim download`` fetches every ``Weights`` entry with ``requests``: a local path or a
    repository page made openmim 0.3.9 crash (``TypeError: exceptions must derive from
    BaseException``) or save an HTML page as the checkpoint. Entries without public weights
    have no ``Weights`` and may say in ``Notes`` how to produce the checkpoint."""
    bad = []
    for metafile, model in zoo_models():
        weights = model.get('Weights', 'absent')
        if weights == 'absent':
            notes = model.get('Notes')
            assert notes is None or (isinstance(notes, str) and notes), (metafile, model['Name'])
            continue
        urls = weights if isinstance(weights, list) else str(weights).split(',')
        for url in urls:
            if not (url.startswith('https://') and url.endswith(('.pth', '.pt', '.safetensors'))):
                bad.append(f'{metafile}: {model["Name"]}: Weights {weights!r}')
    assert not bad, 'not a checkpoint URL:\n' + '\n'.join(bad)
    # the demo entries tell where their checkpoint comes from
    notes = {m['Name']: m.get('Notes', '') for _, m in zoo_models()}
    assert notes['kd_logits_resnet18-w32_resnet18-w8_digits-10pct_demo'] == (
        'no public checkpoint; `make demo` writes it to work_dirs/demo/kd/iter_600.pth')


def test_mim_download_reports_that_the_zoo_has_no_checkpoints(tmp_path):
    """mmkd publishes no checkpoints. ``mim download`` (openmim 0.3.9, offline here) then
    stops before any request with its error for a field no entry has (``weight``), not
    with the ``TypeError`` of a failed fetch; docs/get_started.md explains the message."""
    if any('Weights' in m for _, m in zoo_models()):
        pytest.skip('an entry has public weights now: test mim download on it instead')
    dest = tmp_path / 'dest'
    name = 'kd_logits_resnet18-w32_resnet18-w8_digits-10pct_demo'
    out = run_mim('download', 'mmkd', '--config', name, '--dest', str(dest), cwd=str(tmp_path),
                  expect_fail=True)
    assert "but got {'weight'}" in out, out[-3000:]
    assert 'exceptions must derive from BaseException' not in out
    assert "'float' object has no attribute 'split'" not in out
    assert not dest.exists() or not any(dest.iterdir()), 'mim download wrote something'
