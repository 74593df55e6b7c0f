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


DEMO = 'configs/kd/kd_logits_resnet18-w32_resnet18-w8_digits-10pct_demo.py'


def _child(tmp_path, body):
    path = tmp_path / 'bad_pair.py'
    path.write_text(f"_base_ = [{osp.join(ROOT, DEMO)!r}]\n" + body)
    return str(path)


def test_a_config_that_cannot_build_names_file_key_path_and_valid_values(tmp_path):
    from tools.analysis_tools.dry_run import ConfigBuildError, dry_run
    bad = _child(tmp_path, "model = dict(distiller=dict(loss_forward_mappings=dict(loss_kd=dict("
                           "preds_S=dict(recorder='logitz')))))\n")
    with pytest.raises(ConfigBuildError) as err:
        dry_run(bad)
    text = str(err.value)
    assert text.startswith(bad)
    assert "model.distiller.loss_forward_mappings.loss_kd.preds_S.recorder='logitz'" in text
    assert "declared: ['logits']" in text


def test_dry_run_cli_reports_and_leaves_no_files(tmp_path, monkeypatch, capsys):
    from tools.analysis_tools import dry_run as tool
    monkeypatch.chdir(tmp_path)
    before = {p for p in glob.glob(osp.join(ROOT, '**'), recursive=True)
              if not p.startswith(osp.join(ROOT, '.venv'))}
    assert tool.main([osp.join(ROOT, DEMO)]) == 0
    out = capsys.readouterr().out
    assert 'distill.loss_kd' in out and 'preds_S: (2, 10)' in out and 'preds_T: (2, 10)' in out
    assert "teacher teacher: " in out and "stopped after 'head.fc'" in out
    assert 'random init: dropped model.teacher_ckpt=' in out and out.rstrip().endswith('OK')
    bad = _child(tmp_path, "model = dict(distiller=dict(distill_losses=dict(loss_kd=dict(tau=0))))\n")
    assert tool.main([bad]) == 2
    assert 'tau' in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['bad_pair.py']  # nothing written here
    after = {p for p in glob.glob(osp.join(ROOT, '**'), recursive=True)
             if not p.startswith(osp.join(ROOT, '.venv'))}
    assert after == before  # nor in the repository


def test_dry_run_suggests_a_connector_for_mismatched_shapes(tmp_path):
    from tools.analysis_tools.dry_run import dry_run
    # FitNet on the backbone's last stage: student 64 channels, teacher 256 (widths 8 / 32)
    bad = _child(tmp_path, (
        "model = dict(distiller=dict(\n"
        "    student_recorders=dict(feat=dict(type='ModuleOutputs', source='backbone.layer4')),\n"
        "    teacher_recorders=dict(feat=dict(type='ModuleOutputs', source='backbone.layer4')),\n"
        "    distill_losses=dict(_delete_=True, loss_hint=dict(type='L2Loss')),\n"
        "    loss_forward_mappings=dict(_delete_=True, loss_hint=dict(\n"
        "        s_feature=dict(from_student=True, recorder='feat'),\n"
        "        t_feature=dict(from_student=False, recorder='feat')))))\n"))
    report = dry_run(bad)
    assert report.problems == ['a loss received tensors of different shapes']
    assert 'ConvConnector with in_channels=64, out_channels=256' in report.suggestions[0]
