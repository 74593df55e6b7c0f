"""The model zoo is consistent: model-index imports every method metafile, every
metafile entry points to an existing config whose name matches, every config of a
method folder has an entry, and every config parses."""
import glob
import os.path as osp

import pytest
import yaml

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load(path):
    with open(osp.join(ROOT, path)) as f:
        return yaml.safe_load(f)


def metafiles():
    return load('model-index.yml')['Import']


def test_model_index_imports_every_metafile():
    on_disk = sorted(osp.relpath(p, ROOT) for p in glob.glob(osp.join(ROOT, 'configs/*/metafile.yml')))
    assert sorted(metafiles()) == on_disk


@pytest.mark.parametrize('metafile', metafiles())
def test_metafile_entries_match_configs(metafile):
    meta = load(metafile)
    folder = osp.dirname(metafile)
    collections = {c['Name'] for c in meta.get('Collections', [])}
    assert collections, f'{metafile} has no Collection'
    for c in meta['Collections']:
        readme = c.get('README')
        assert readme and osp.isfile(osp.join(ROOT, readme)), f'{metafile}: README {readme!r}'
    names = set()
    for model in meta['Models']:
        cfg = model['Config']
        assert osp.isfile(osp.join(ROOT, cfg)), f'{metafile}: {cfg} does not exist'
        assert osp.splitext(osp.basename(cfg))[0] == model['Name'], f'{cfg} vs {model["Name"]}'
        assert model['In Collection'] in collections
        assert model.get('Results'), f'{model["Name"]} has no Results'
        names.add(model['Name'])
    configs = {osp.splitext(osp.basename(p))[0] for p in glob.glob(osp.join(ROOT, folder, '*.py'))}
    assert configs <= names, f'{metafile}: configs without an entry: {sorted(configs - names)}'


def all_configs():
    return sorted(osp.relpath(p, ROOT) for p in glob.glob(osp.join(ROOT, 'configs/*/*.py'))
                  if not osp.basename(osp.dirname(p)).startswith('_'))


@pytest.mark.parametrize('config', all_configs())
def test_config_parses(config):
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, config))
    assert 'model' in cfg and 'train_dataloader' in cfg
