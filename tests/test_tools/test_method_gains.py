"""tools/demo/method_gains.py: the seed statistics, the table, and a smoke run."""
import importlib.util
import json
import math
import os.path as osp

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_driver():
    path = osp.join(ROOT, 'tools/demo/method_gains.py')
    spec = importlib.util.spec_from_file_location('method_gains', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_method_config_exists():
    gains = load_driver()
    for method, (task, config) in gains.METHODS.items():
        for path in (config, task['teacher'], task['student']):
            assert osp.isfile(osp.join(ROOT, path)), (method, path)


def test_summary_pairs_seeds_and_uses_the_sample_std():
    gains = load_driver()
    task = dict(metric='mIoU')
    row = gains.summarise('m', task, alone={0: 10.0, 1: 12.0, 2: 14.0, 7: 99.0},
                          distilled={0: 11.0, 1: 14.0, 2: 17.0}, teacher=50.0)
    assert row['seeds'] == [0, 1, 2]  # seed 7 has no distilled run: left out
    assert row['alone_mean'] == pytest.approx(12.0)
    assert row['alone_std'] == pytest.approx(2.0)  # n-1: sqrt((4+0+4)/2)
    assert row['gain_mean'] == pytest.approx(2.0)  # gains 1, 2, 3
    assert row['gain_std'] == pytest.approx(1.0)
    assert row['gain_outside_one_std'] is True
    flat = gains.summarise('m', task, alone={0: 10.0, 1: 12.0}, distilled={0: 12.0, 1: 11.0},
                           teacher=50.0)
    assert flat['gain_mean'] == pytest.approx(0.5)  # gains +2, -1: std 2.12 > mean
    assert flat['gain_outside_one_std'] is False
    one = gains.summarise('m', task, alone={0: 10.0}, distilled={0: 13.0}, teacher=50.0)
    assert math.isnan(one['gain_std']) and one['gain_outside_one_std'] is False
    with pytest.raises(ValueError, match='no seed has both'):
        gains.summarise('m', task, alone={0: 1.0}, distilled={1: 2.0}, teacher=1.0)


def test_markdown_row_and_bad_arguments():
    gains = load_driver()
    row = gains.summarise('kd', dict(metric='accuracy/top1'), {0: 90.0, 1: 92.0},
                          {0: 95.0, 1: 96.0}, teacher=99.5)
    table = gains.markdown([row], 'python tools/demo/method_gains.py --methods kd')
    assert '| kd | accuracy/top1 | 99.50 | 91.00 ± 1.41 | 95.50 ± 0.71 | +4.50 ± 0.71 | 2 | yes |' \
        in table
    with pytest.raises(SystemExit):
        gains.parse_args(['--methods', 'no_such_method'])
    with pytest.raises(SystemExit):
        gains.parse_args(['--seeds', '1', '1'])
    args = gains.parse_args(['--quick'])
    assert (args.methods, args.seeds, args.iters) == (['kd'], [0, 1], 60)


@pytest.mark.slow
def test_quick_run_trains_teacher_once_and_writes_the_table(tmp_path, capsys):
    gains = load_driver()
    rows = gains.main(['--quick', '--work-dir', str(tmp_path)])
    assert [r['method'] for r in rows] == ['kd']
    row = rows[0]
    assert row['seeds'] == [0, 1] and len(row['alone']) == 2
    # different seeds give different students (a seed that is not applied would not)
    assert row['alone'][0] != row['alone'][1] or row['distilled'][0] != row['distilled'][1]
    written = json.loads((tmp_path / 'gains.json').read_text())
    assert written[0]['gain_mean'] == pytest.approx(row['gain_mean'])
    assert '| kd | accuracy/top1 |' in (tmp_path / 'gains.md').read_text()
    runs = json.loads((tmp_path / 'runs.json').read_text())
    assert sorted(runs) == ['alone:student_resnet18-w8_digits-10pct_demo:0:60',
                            'alone:student_resnet18-w8_digits-10pct_demo:1:60',
                            'kd:0:60', 'kd:1:60',
                            'teacher:teacher_resnet18-w32_digits_demo:60']
    assert capsys.readouterr().out.count('[demo] training') == 5
    # a second call reuses every recorded run: nothing is trained again
    again = gains.main(['--quick', '--resume', '--work-dir', str(tmp_path)])
    assert again[0]['distilled'] == row['distilled']
    assert '[demo] training' not in capsys.readouterr().out
