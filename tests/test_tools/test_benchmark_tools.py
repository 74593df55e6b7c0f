"""The benchmark scripts run end to end on demo configs and write what they promise.

Their figures are measurements (docs/benchmarks.md), not test outcomes: these tests
check that each script runs, times every variant, writes its JSON (and PNG) and that
the structural facts it reports (which variants exist, which teacher blocks ran) are
right. No timing is asserted.
"""
import importlib.util
import json
import os.path as osp

from PIL import Image

from .cli import ROOT, run_tool


def test_distill_speed_runs_all_five_variants_and_writes_json_and_png(tmp_path):
    out = run_tool('tools/benchmark/distill_speed.py',
                   'configs/kd/kd_logits_resnet18-w32_resnet18-w8_digits-10pct_demo.py',
                   '--iters', '1', '--warmup', '0', '--batch-size', '4', '--device', 'cpu',
                   '--out', str(tmp_path), '--name', 'kd_demo', '--rss', timeout=600)
    assert 'b/c framework overhead' in out and 'd/a cached vs student alone' in out
    assert 'b/e early exit' in out and 'skipped' not in out
    result = json.load(open(tmp_path / 'kd_demo.json'))
    assert set(result['median_ms']) == {'a_student', 'b_mmkd', 'c_plain', 'd_cached',
                                        'e_no_early_exit'}
    assert all(v > 0 for v in result['median_ms'].values())
    for key in ('ratio_b_over_a', 'ratio_b_over_c', 'ratio_b_over_d', 'ratio_d_over_a',
                'ratio_b_over_e'):
        assert result[key] > 0, key
    med = result['median_ms']
    assert abs(result['ratio_b_over_e'] - med['b_mmkd'] / med['e_no_early_exit']) < 1e-9
    # memory probes ran in fresh processes from the bare process, so (b)'s peak holds the
    # teacher's weights and (a)'s the student's; the bound is the teacher's size x 1.2
    assert set(result['peak_mib']) == {'a_student', 'b_mmkd', 'c_plain'}
    assert result['memory_probe'].startswith('fresh process per variant')
    assert 0 < result['student_weight_mib'] < result['teacher_weight_mib']
    # tensor bytes: (a) holds at least the student's weights and their gradients
    assert result['peak_mib']['a_student'] >= 2 * result['student_weight_mib']
    assert result['peak_mib']['b_mmkd'] >= result['teacher_weight_mib'] + result['student_weight_mib']
    assert abs(result['memory_b_minus_a_mib']
               - (result['peak_mib']['b_mmkd'] - result['peak_mib']['a_student'])) < 1e-9
    # (c), the hand-written loop, also holds both models; b-c and c-a split b-a
    assert result['peak_mib']['c_plain'] >= result['teacher_weight_mib'] + result['student_weight_mib']
    assert abs(result['memory_b_minus_c_mib'] + result['memory_c_minus_a_mib']
               - result['memory_b_minus_a_mib']) < 1e-9
    # (b)'s peak outside the teacher forward is a part of its peak, and still holds both models
    outside = result['peak_b_outside_teacher_forward_mib']
    assert result['teacher_weight_mib'] <= outside <= result['peak_mib']['b_mmkd']
    assert abs(result['memory_b_outside_teacher_forward_minus_a_mib']
               - (outside - result['peak_mib']['a_student'])) < 1e-9
    # counted in tensor bytes, what (b) holds outside its teacher forward beyond (a) is the
    # frozen teacher's weights and its recorded logits: no teacher graph, no teacher grads
    assert abs(result['memory_b_outside_teacher_forward_minus_a_mib']
               - result['teacher_weight_mib']) < 0.05 * result['teacher_weight_mib']
    # --rss: the same three probes measured as resident set size, reported beside them
    assert result['rss']['memory_probe'].startswith('fresh process per variant; peak resident')
    assert set(result['rss']['peak_mib']) == {'a_student', 'b_mmkd', 'c_plain'}
    assert result['rss']['peak_mib']['b_mmkd'] >= result['teacher_weight_mib']
    assert 'peak RSS above the bare process' in out
    assert abs(result['memory_bound_mib'] - 1.2 * (result['teacher_weight_mib']
                                                  + result['teacher_recorded_mib'])) < 1e-9
    assert result['memory_within_bound'] == (result['memory_b_minus_a_mib']
                                             <= result['memory_bound_mib'])
    with Image.open(tmp_path / 'kd_demo.png') as im:
        assert im.size[0] > 300 and im.size[1] > 150


def test_summarize_prints_a_row_per_result_and_hides_earlier_probe_memory(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location('summarize', osp.join(ROOT, 'tools', 'benchmark',
                                                                        'summarize.py'))
    summarize = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(summarize)
    base = dict(config='x.py', device='cpu', input_size=64, batch_size=2,
                median_ms=dict(a_student=10.0, b_mmkd=20.0, e_no_early_exit=25.0),
                ratio_b_over_c=None, ratio_b_over_d=None, ratio_d_over_a=None,
                ratio_b_over_e=0.8, peak_mib=dict(a_student=30.0, b_mmkd=70.0),
                memory_b_minus_a_mib=40.0, memory_bound_mib=50.0,
                memory_b_outside_teacher_forward_minus_a_mib=35.0)
    probe = 'fresh process per variant; bytes held by tensors above a baseline'
    json.dump(dict(base, memory_probe=probe), open(tmp_path / 'new.json', 'w'))
    with_c = dict(base, memory_probe=probe, memory_b_minus_c_mib=3.0,
                  peak_mib=dict(a_student=30.0, b_mmkd=70.0, c_plain=67.0),
                  rss=dict(memory_b_minus_a_mib=52.4))
    json.dump(with_c, open(tmp_path / 'with_c.json', 'w'))
    json.dump(base, open(tmp_path / 'old.json', 'w'))  # written by the flawed probe
    rss_only = dict(base, memory_probe='fresh process per variant; baseline after the imports')
    json.dump(rss_only, open(tmp_path / 'rss_era.json', 'w'))  # RSS peaks, before the tensor count
    summarize.main([str(tmp_path)])
    lines = capsys.readouterr().out.splitlines()
    header, rows = lines[0], {ln.split(' | ')[0][2:]: ln for ln in lines[2:]}
    assert header.count('|') == lines[1].count('|') == rows['new'].count('|')
    assert '| 25 | 2.00 | n/a | n/a | n/a | 0.800 | 30 / 70 / n/a | 40 | n/a | 35 | 50 | n/a |' in rows['new']
    assert rows['with_c'].endswith('| 0.800 | 30 / 70 / 67 | 40 | 3 | 35 | 50 | 52 |')
    assert rows['old'].endswith('| 0.800 | n/a | n/a | n/a | n/a | n/a | n/a |')
    assert rows['rss_era'] == rows['old'].replace('| old |', '| rss_era |')


def test_dmae_truncated_teacher_counts_blocks_of_both_variants(tmp_path):
    out_json = tmp_path / 'dmae.json'
    out = run_tool('tools/benchmark/dmae_truncated_teacher.py',
                   'configs/dmae/dmae_vit-d8-w128_vit-d4-w64_p4_digits_demo.py',
                   '--iters', '1', '--warmup', '0', '--batch-size', '4', '--device', 'cpu',
                   '--out', str(out_json), timeout=600)
    assert 'saving of the truncated teacher' in out
    result = json.load(open(out_json))
    # demo teacher: 8 encoder + 4 decoder blocks, aligned at encoder block 6
    assert result['teacher_blocks'] == {'encoder': 8, 'decoder': 4}
    assert result['blocks'] == {'truncated': 6, 'full': 12}
    assert osp.basename(result['config']).startswith('dmae_')
    assert all(result['median_ms'][v]['teacher'] > 0 for v in ('truncated', 'full'))
