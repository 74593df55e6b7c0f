"""The benchmark scripts run end to end on demo configs and write what they promise.

Their figures are measurements (docs/benchmarks.md), not test outcomes: these tests
check that each script runs, times every variant, writes its JSON (and PNG) and that
the structural facts it reports (which variants exist, which teacher blocks ran) are
right. No timing is asserted.
"""
import json
import os.path as osp

from PIL import Image

from .cli import run_tool


def test_distill_speed_runs_all_four_variants_and_writes_json_and_png(tmp_path):
    out = run_tool('tools/benchmark/distill_speed.py',
                   'configs/kd/kd_logits_resnet18-w32_resnet18-w8_digits-10pct_demo.py',
                   '--iters', '1', '--warmup', '0', '--batch-size', '4', '--device', 'cpu',
                   '--out', str(tmp_path), '--name', 'kd_demo', timeout=600)
    assert 'b/c framework overhead' in out and 'd/a cached vs student alone' in out
    result = json.load(open(tmp_path / 'kd_demo.json'))
    assert set(result['median_ms']) == {'a_student', 'b_mmkd', 'c_plain', 'd_cached'}
    assert all(v > 0 for v in result['median_ms'].values())
    for key in ('ratio_b_over_a', 'ratio_b_over_c', 'ratio_b_over_d', 'ratio_d_over_a'):
        assert result[key] > 0, key
    # memory probes ran in fresh processes and the bound is the teacher's size x 1.2
    assert set(result['peak_mib']) == {'a_student', 'b_mmkd'}
    assert result['teacher_weight_mib'] > 0
    assert abs(result['memory_bound_mib'] - 1.2 * (result['teacher_weight_mib']
                                                  + result['teacher_recorded_mib'])) < 1e-9
    with Image.open(tmp_path / 'kd_demo.png') as im:
        assert im.size[0] > 300 and im.size[1] > 150


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
