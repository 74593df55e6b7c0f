"""tools/benchmark/peer_speed.py (mmkd vs a hand-written loop vs torchdistill) and
tools/benchmark/gpu_check.sh's CPU dry run."""
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load(name):
    path = osp.join(ROOT, 'tools', 'benchmark', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'mmkd_bench_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_summary_ratios_and_table():
    ps = load('peer_speed')
    stats = {'mmkd': ps.summary([0.010, 0.012, 0.011, 0.013]),
             'hand_tv': ps.summary([0.010, 0.010, 0.010, 0.010]),
             'hand_mm': ps.summary([0.011, 0.011, 0.011, 0.011])}
    assert stats['mmkd']['median'] == pytest.approx(11.5)
    assert stats['mmkd']['min'] == pytest.approx(10) and stats['mmkd']['max'] == pytest.approx(13)
    assert stats['mmkd']['q1'] <= 11.5 <= stats['mmkd']['q3']
    r = ps.ratios(stats)
    assert r == pytest.approx({'mmkd/hand_tv': 1.15, 'mmkd/hand_mm': 11.5 / 11})
    results = dict(batch_size=8, pairs={'kd': dict(title='KD', input_size=64, stats=stats,
                                                   ratios=r)})
    table = ps.markdown_table(results)
    assert '| KD | 8x64px | mmkd | 11.5 |' in table
    assert '| KD | 1.150 | 1.045 | n/a |' in table  # no torchdistill: n/a


def test_torchdistill_missing_is_reported(monkeypatch):
    ps = load('peer_speed')
    monkeypatch.setitem(sys.modules, 'torchdistill', None)  # `import torchdistill` fails
    module, version, reason = ps.torchdistill_status()
    assert module is None and version is None
    assert 'not importable' in reason and 'requirements/benchmark.txt' in reason


@pytest.mark.parametrize('pair', ['kd', 'hint'])
def test_torchdistill_computes_the_hand_written_loss(pair):
    """Same torchvision weights, same batch: torchdistill's configured loss (KDLoss or
    MSELoss on its sequential teacher trunk, + cross-entropy) is the hand loop's."""
    pytest.importorskip('torchdistill')
    ps = load('peer_speed')
    ds = ps.load_distill_speed()
    cfg, scope, _, _ = ds.load_config(osp.join(ROOT, ps.KD_CONFIG))
    batches, _, size = ds.build_data(cfg, scope, None, 2, 32)
    algo = ds.build_algo(ps.hint_model_cfg() if pair == 'hint' else
                         ds.load_config(osp.join(ROOT, ps.KD_CONFIG))[2], size, 'cpu')
    prep = algo.data_preprocessor
    hand = ps.hand_tv_step(pair, *ps.build_tv(pair, 'cpu'), prep, batches)
    td, _ = ps.torchdistill_step(pair, *ps.build_tv(pair, 'cpu'), prep, batches, 'cpu')
    for k in range(2):  # the second step also checks that both updated the same way
        torch.testing.assert_close(td(k), hand(k), rtol=1e-5, atol=1e-6)


def test_run_writes_json_and_png(tmp_path):
    ps = load('peer_speed')
    res = ps.main(['--pairs', 'hint', '--iters', '2', '--warmup', '0', '--batch-size', '2',
                   '--cls-size', '32', '--out', str(tmp_path)])
    pair = res['pairs']['hint']
    expected = {'mmkd', 'hand_mm', 'hand_tv'} | ({'torchdistill'} if res['torchdistill'] else set())
    assert set(pair['stats']) == expected
    assert pair['mm_params'] == pair['tv_params']  # the same architectures
    assert 'mmkd/hand_tv' in pair['ratios'] and 'mmkd/hand_mm' in pair['ratios']
    if not res['torchdistill']:
        assert 'torchdistill' in pair['skipped']
    saved = json.loads((tmp_path / 'peer_speed.json').read_text())
    assert saved['pairs']['hint']['stats']['mmkd']['n'] == 2
    assert (tmp_path / 'peer_speed.png').stat().st_size > 0


def test_gpu_check_dry_run_passes_without_a_gpu():
    """gpu_check.sh without a GPU (forced here, so that it also holds on a GPU machine):
    says so, imports and builds every piece on the CPU, exits 0."""
    env = dict(os.environ, GPU_CHECK_DRY_RUN='1', OMP_NUM_THREADS='1', PYTHON=sys.executable)
    out = subprocess.run(['bash', osp.join(ROOT, 'tools', 'benchmark', 'gpu_check.sh')],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert 'no CUDA device detected' in out.stdout
    assert 'dry run passed' in out.stdout
    for piece in ('kd: teacher bf16', 'hint: teacher compile', 'fpn: student amp fp16',
                  'ACAM-KD fusion tool', '2-GPU config', 'peer_speed.py'):
        assert piece in out.stdout, piece
