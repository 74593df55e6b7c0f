"""The bad-input suite: malformed configs and inputs, each must fail with an error
that names the problem (the config key, the bad value, what would be valid), before
any training step where possible. Counts are reported in docs/reliability.md."""
import copy
import json

import pytest
import torch

from mmkd.registry import MODELS

from .helpers import batch, logit_distiller, tiny_classifier


def build(distiller=None, **kw):
    cfg = dict(type='SingleTeacherDistill', architecture=tiny_classifier(width=4),
               teacher=tiny_classifier(width=8), distiller=distiller or logit_distiller())
    cfg.update(kw)
    return MODELS.build(cfg)


def step(model):
    return model(**model.data_preprocessor(batch(), True), mode='loss')


def distiller_with(**changes):
    cfg = logit_distiller()
    for path, value in changes.items():
        node = cfg
        keys = path.split('.')
        for k in keys[:-1]:
            node = node[k]
        if value is KeyError:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value
    return cfg


def feat_distiller(connector=None, s_source='neck', t_source='neck'):
    cfg = dict(
        type='ConfigurableDistiller',
        student_recorders=dict(f=dict(type='ModuleOutputs', source=s_source)),
        teacher_recorders=dict(f=dict(type='ModuleOutputs', source=t_source)),
        distill_losses=dict(loss_f=dict(type='L2Loss')),
        loss_forward_mappings=dict(loss_f=dict(
            s_feature=dict(from_student=True, recorder='f', data_idx=0),
            t_feature=dict(from_student=False, recorder='f', data_idx=0))))
    if connector:
        cfg['connectors'] = dict(c=connector)
        cfg['loss_forward_mappings']['loss_f']['s_feature']['connector'] = 'c'
    return cfg


CASES = {
    # --- distiller / mapping config -------------------------------------------------
    'bad module path': (lambda: build(distiller_with(**{'student_recorders.logits.source': 'head.fcc'})),
                        ValueError, r"student_recorders\.logits.*'head\.fc'"),
    'bad teacher module path': (lambda: build(distiller_with(**{'teacher_recorders.logits.source': 'neckk'})),
                                ValueError, r"teacher_recorders\.logits.*'neck'"),
    'unknown recorder type': (lambda: build(distiller_with(**{'student_recorders.logits.type': 'ModuleOutput'})),
                              KeyError, r'student_recorders\.logits'),
    'recorder without type': (lambda: build(distiller_with(**{'student_recorders.logits': dict(source='head')})),
                              TypeError, r'student_recorders\.logits.*"type"'),
    'recorder not declared': (lambda: build(distiller_with(**{'loss_forward_mappings.loss_kd.preds_T.recorder': 'x'})),
                              KeyError, r"preds_T\.recorder='x'.*declared"),
    'loss argument not taken': (lambda: build(distiller_with(**{'loss_forward_mappings.loss_kd.logits': dict(
        from_student=True, recorder='logits')})), TypeError, r'loss_kd\.logits.*valid arguments'),
    'required loss argument missing': (lambda: build(distiller_with(**{'loss_forward_mappings.loss_kd.preds_T': KeyError})),
                                       KeyError, r"lacks required argument\(s\) \['preds_T'\]"),
    'unknown loss type': (lambda: build(logit_distiller(loss=dict(type='KLDiv'))), KeyError, r'not registered'),
    'loss constructor argument': (lambda: build(logit_distiller(loss=dict(type='KLDivergence', T=4))),
                                  TypeError, r"takes no argument 'T'.*tau"),
    'loss bad value': (lambda: build(logit_distiller(loss=dict(type='KLDivergence', tau=-1))),
                       ValueError, r'tau must be > 0'),
    'loss bad reduction': (lambda: build(logit_distiller(loss=dict(type='KLDivergence', reduction='avg'))),
                           ValueError, r'reduction'),
    'mapping for unknown loss': (lambda: build(distiller_with(**{'loss_forward_mappings.loss_x': dict()})),
                                 KeyError, r'loss_x: no such loss'),
    'loss without mapping': (lambda: build(distiller_with(**{'loss_forward_mappings': dict()})),
                             KeyError, r'no entry in loss_forward_mappings'),
    'mapping not a dict': (lambda: build(distiller_with(**{'loss_forward_mappings.loss_kd.preds_S': 'logits'})),
                           TypeError, r'preds_S must be a dict'),
    'unknown mapping key': (lambda: build(distiller_with(**{'loss_forward_mappings.loss_kd.preds_S.idx': 0})),
                            KeyError, r"unknown keys \['idx'\]"),
    'mapping without from_student': (lambda: build(distiller_with(
        **{'loss_forward_mappings.loss_kd.preds_S.from_student': KeyError})), KeyError, r"needs 'from_student'"),
    'connector not declared': (lambda: build(distiller_with(**{'loss_forward_mappings.loss_kd.preds_S.connector': 'c'})),
                               KeyError, r"connector='c' is not declared"),
    'connector without type': (lambda: build(feat_distiller(connector=dict(in_channels=32))),
                               TypeError, r'connectors\.c must be a dict with a "type"'),
    # --- shapes and runtime indices ---------------------------------------------------------
    'shape mismatch without connector': (lambda: step(build(feat_distiller())), ValueError,
                                         r'loss_f: s_feature has shape \(4, 32\).*\(4, 64\)'),
    'connector with wrong in_channels': (lambda: step(build(feat_distiller(dict(
        type='LinearConnector', in_features=16, out_features=64)))), ValueError, r"connector='c'.*in_features=16"),
    'class-count mismatch (logit KD)': (lambda: step(MODELS.build(dict(
        type='SingleTeacherDistill', architecture=tiny_classifier(width=4, num_classes=4),
        teacher=tiny_classifier(width=8, num_classes=10), distiller=logit_distiller()))),
        ValueError, r'preds_S has shape \(4, 4\).*preds_T has shape \(4, 10\)'),
    'record_idx out of range': (lambda: step(build(distiller_with(
        **{'loss_forward_mappings.loss_kd.preds_T.record_idx': 3}))), IndexError, r'record_idx=3.*ran 1 time'),
    'data_idx on a tensor': (lambda: step(build(distiller_with(
        **{'loss_forward_mappings.loss_kd.preds_T.data_idx': 0}))), TypeError, r'data_idx=0.*drop data_idx'),
    'from_data field missing': (lambda: step(build(logit_distiller(loss=dict(type='DKDLoss'), gt_labels=dict(
        from_data='gt_score')))), ValueError, r"from_data='gt_score'.*have"),
    # --- algorithm arguments ------------------------------------------------------------------
    'teacher_forward_mode': (lambda: build(teacher_forward_mode='train'), ValueError, r'teacher_forward_mode'),
    'architecture missing type': (lambda: build(architecture=dict(backbone=dict())), KeyError, r"architecture needs 'type'"),
    'architecture unknown type': (lambda: build(architecture=dict(type='ImageClassifer')), KeyError,
                                  r'architecture\.type=.ImageClassifer.'),
    'cfg_path missing file': (lambda: build(architecture=dict(cfg_path='nope.py')), FileNotFoundError,
                              r"architecture\.cfg_path='nope\.py'"),
    'cfg_path unknown package config': (lambda: build(teacher=dict(cfg_path='mmkd::kd/nope.py')),
                                        FileNotFoundError, r'no such config'),
    'cfg_path override drops type': (lambda: build(teacher=dict(
        cfg_path='mmkd::kd/student_resnet18-w8_digits-10pct_demo.py', _delete_=True,
        head=dict(num_classes=3))), KeyError, r'teacher: the overrides next to cfg_path removed the model type'),
    'cfg_path override not a dict': (lambda: build(teacher=dict(
        cfg_path='mmkd::kd/student_resnet18-w8_digits-10pct_demo.py', model_override=3)), TypeError,
        r'teacher\.model_override must be a dict'),
    'architecture wrong type': (lambda: build(architecture=[1]), TypeError, r'architecture must be a model dict'),
    # --- hooks, connectors, data ----------------------------------------------------------------
    'weight hook decay half given': (lambda: __import__('mmkd.engine', fromlist=['x']).DistillLossWeightHook(
        decay_begin=3), ValueError, r'decay_begin and decay_end'),
    'stop hook no point': (lambda: __import__('mmkd.engine', fromlist=['x']).StopDistillHook(), ValueError,
                           r'exactly one of stop_epoch and stop_iter'),
    'tokens not a grid': (lambda: MODELS.build(dict(type='TokensToMap', in_channels=8))(torch.zeros(1, 10, 8)),
                          ValueError, r'10 patch tokens do not form'),
    'conv connector even kernel': (lambda: MODELS.build(dict(type='ConvConnector', in_channels=2, out_channels=2,
                                                             kernel_size=2)), ValueError, r'kernel_size must be odd'),
    'digits bad split': (lambda: __import__('mmkd.datasets', fromlist=['x']).DigitsDataset(split='test'),
                         ValueError, r"split='test'"),
}


@pytest.mark.parametrize('name', sorted(CASES))
def test_bad_input(name):
    fn, exc, pattern = CASES[name]
    with pytest.raises(exc, match=pattern):
        fn()


def test_missing_data_root(tmp_path):
    from mmengine.config import Config
    from mmengine.registry import DATASETS, init_default_scope
    cfg = Config.fromfile('configs/_base_/datasets/shapes_detection.py')
    init_default_scope('mmdet')
    ds = copy.deepcopy(cfg.train_dataloader.dataset)
    ds.data_root = str(tmp_path / 'missing') + '/'
    with pytest.raises(FileNotFoundError, match='missing'):
        DATASETS.build(ds)


EMPTY_CFG = """
_base_ = [{base!r}]
{key} = dict(dataset=dict(_delete_=True, type='CustomDataset', data_root={root!r},
                          ann_file='meta/train.txt', data_prefix='images',
                          pipeline=[dict(type='PackInputs')]))
"""


@pytest.mark.slow  # runs the CLI: about 10 s per case
@pytest.mark.parametrize('key', ['train_dataloader', 'val_dataloader', 'test_dataloader'])
def test_empty_data_set_names_the_config_key(tmp_path, key):
    """An annotation list with no sample: numpy's "need at least one array to concatenate"
    (from mmengine's BaseDataset) becomes an error naming the key, type and paths."""
    import os.path as osp
    import subprocess
    import sys
    root = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    (tmp_path / 'data' / 'meta').mkdir(parents=True)
    (tmp_path / 'data' / 'images').mkdir()
    (tmp_path / 'data' / 'meta' / 'train.txt').write_text('')
    cfg = tmp_path / 'empty.py'
    cfg.write_text(EMPTY_CFG.format(
        base=osp.join(root, 'configs/kd/student_resnet18-w8_digits-10pct_demo.py'), key=key,
        root=str(tmp_path / 'data')))
    work = tmp_path / 'work'
    if key == 'test_dataloader':
        # a real student checkpoint: tools/test.py checks the file and its fit first, then
        # the data set is built (and fails) before the weights would be used
        import torch
        from mmengine.config import Config

        from mmkd.utils.model_builder import build_task_model
        student_cfg = Config.fromfile(osp.join(
            root, 'configs/kd/student_resnet18-w8_digits-10pct_demo.py')).model.to_dict()
        student, _ = build_task_model(dict(student_cfg, _scope_='mmpretrain'))
        ckpt = tmp_path / 'student.pth'
        torch.save({'state_dict': student.state_dict(), 'meta': {}}, ckpt)
        cmd = ['tools/test.py', str(cfg), str(ckpt)]
    else:
        cmd = ['tools/train.py', str(cfg)]
    proc = subprocess.run([sys.executable, *cmd, '--work-dir', str(work)], cwd=root,
                          capture_output=True, text=True, timeout=300,
                          env={**__import__('os').environ, 'OMP_NUM_THREADS': '1'})
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    last = out.strip().splitlines()[-1]
    assert last.startswith('ValueError: ') and f'{key}.dataset' in last, out[-3000:]
    for part in ("type 'CustomDataset'", f"data_root={str(tmp_path / 'data')!r}",
                 "ann_file='meta/train.txt'", "data_prefix='images'", 'is empty',
                 f"{osp.join(str(tmp_path / 'data'), 'meta/train.txt')!r}"):
        assert part in last, (part, last)
    assert 'need at least one array' not in out  # the cryptic message is replaced
    assert 'Iter(train)' not in out and not list(work.glob('*.pth'))  # before any step


def test_corrupt_image(tmp_path):
    from mmengine.registry import TRANSFORMS, init_default_scope
    init_default_scope('mmdet')
    bad = tmp_path / 'x.png'
    bad.write_bytes(b'not a png')
    load = TRANSFORMS.build(dict(type='LoadImageFromFile'))
    with pytest.raises(Exception, match=r'x\.png|decode|cannot|NoneType|Failed'):
        load(dict(img_path=str(bad)))


def test_corrupt_and_mismatched_cache(tmp_path):
    from mmkd.datasets import CachedTeacherDataset
    ds_cfg = dict(type='mmkd.DigitsDataset', split='val', img_size=8, pipeline=[dict(type='PackInputs')])
    from mmengine.registry import init_default_scope
    init_default_scope('mmpretrain')
    with pytest.raises(FileNotFoundError, match='no manifest.json'):
        CachedTeacherDataset(ds_cfg, cache_dir=str(tmp_path))
    (tmp_path / 'manifest.json').write_text(json.dumps(dict(
        data_fingerprint='0' * 64, teacher_fingerprint='1' * 64, num_samples=359, shards=[])))
    with pytest.raises(ValueError, match='another data set, pipeline'):
        CachedTeacherDataset(ds_cfg, cache_dir=str(tmp_path))
    wrapper = CachedTeacherDataset(ds_cfg)
    (tmp_path / 'manifest.json').write_text(json.dumps(dict(
        data_fingerprint=wrapper.fingerprint, teacher_fingerprint='1' * 64, num_samples=359,
        shards=['shard_00000.pt'])))
    (tmp_path / 'shard_00000.pt').write_bytes(b'garbage')
    with pytest.raises(ValueError, match=r'corrupt teacher cache file .*shard_00000\.pt'):
        CachedTeacherDataset(ds_cfg, cache_dir=str(tmp_path))
