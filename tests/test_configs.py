"""Every shipped config builds and trains (timm style: one test id per config).

Each config in ``configs/<method>/`` goes through ``tools/analysis_tools/dry_run.py``:
built with random weights (no download, no checkpoint read), one ``train_step`` through
the config's own optimizer wrapper on a tiny batch of its own task type, then the
checks of the dry run: finite losses that hold every distillation term the config
declares, the teacher unchanged, frozen, in eval mode and outside the state dict,
``predict`` returning one result per sample, and the converted student loading
``strict=True`` into the plain task model. The configs whose models are too large for a
CPU step run at the reduced size of ``dry_run.TINY`` (the one documented mechanism),
never skipped. A config that cannot run is listed in ``NOT_RUN`` with the reason; the
guard fails for a config that is neither.
"""
import glob
import os.path as osp

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

# config (relative to the repository) -> why it cannot run here. Kept empty on purpose:
# a new entry needs a reason a reviewer accepts.
NOT_RUN: dict = {}


def all_configs():
    return sorted(osp.relpath(p, ROOT) for p in glob.glob(osp.join(ROOT, 'configs/*/*.py'))
                  if not osp.basename(osp.dirname(p)).startswith('_'))


def _id(config):
    return osp.splitext(osp.basename(config))[0]


def test_every_config_is_run_or_listed():
    configs = set(all_configs())
    assert len(configs) >= 100, 'the config glob found too few configs'
    assert set(NOT_RUN) <= configs, f'NOT_RUN names missing configs: {set(NOT_RUN) - configs}'
    for config, reason in NOT_RUN.items():
        assert isinstance(reason, str) and len(reason) > 20, f'{config}: give the reason'


def _is_distillation(model_cfg):
    return model_cfg.get('type') not in (
        'ImageClassifier', 'EncoderDecoder', 'RetinaNet', 'FasterRCNN', 'MaskRCNN', 'MAE',
        'LlavaModel', 'OpenCLIPModel', 'MultimodalClassifier') and not str(
            model_cfg.get('type', '')).startswith(('mmdet.', 'mmseg.', 'mmpretrain.'))


@pytest.mark.parametrize('config', [c for c in all_configs() if c not in NOT_RUN], ids=_id)
def test_config_builds_and_trains_one_step(config):
    from tools.analysis_tools.dry_run import dry_run, term_logged
    report = dry_run(osp.join(ROOT, config))
    assert not report.problems, '\n'.join(report.lines())
    assert 'loss' in report.log_vars, sorted(report.log_vars)
    assert report.predictions == 2
    if report.declared:
        for term in report.declared:
            assert term_logged(term, report.log_vars), (term, sorted(report.log_vars))
        assert report.converted_tensors > 0
