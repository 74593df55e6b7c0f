"""tools/analysis_tools/acam_fusion_memory.py: level sizes, the profiler's peak, a run."""
import importlib.util
import json
import os.path as osp

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_tool():
    path = osp.join(ROOT, 'tools', 'analysis_tools', 'acam_fusion_memory.py')
    spec = importlib.util.spec_from_file_location('acam_fusion_memory_tool', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_level_sizes_at_coco_scale():
    tool = load_tool()
    # 800 x 1333 is padded to 800 x 1344 (multiple of 32); each level rounds up
    expected = {'P2': (200, 336), 'P3': (100, 168), 'P4': (50, 84), 'P5': (25, 42),
                'P6': (13, 21), 'P7': (7, 11)}
    for level, hw in expected.items():
        assert tool.level_size(level, (800, 1333)) == hw, level
    assert 200 * 336 == 67200  # "about 67k positions" of Faster R-CNN's P2
    with pytest.raises(ValueError, match="unknown level 'P9'"):
        tool.level_size('P9', (800, 1333))


def test_profiler_peak_counts_live_tensor_bytes():
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile
    tool = load_tool()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        a = torch.empty(1_000_000)  # 4 MB
        b = torch.empty(1_000_000)  # 4 MB, 8 MB held
        del a  # 4 MB held
        c = torch.empty(3_000_000)  # 12 MB: 16 MB held, the peak
        del b, c
        d = torch.empty(500_000)  # 2 MB after everything else was freed
    peak = tool.profiler_peak_bytes(prof, DeviceType.CPU)
    assert 16_000_000 <= peak < 16_000_000 + 100_000
    del d


@pytest.mark.slow
def test_tool_run_sdpa_stays_below_the_p_by_p_matrix(tmp_path, capsys):
    tool = load_tool()
    out = tmp_path / 'rows.json'
    rc = tool.main(['--shape', '1', '8', '32', '48', '--impl', 'sdpa', 'full', '--threads', '1',
                    '--json', str(out)])
    assert rc == 0
    rows = {r['impl']: r for r in json.loads(out.read_text())}
    p_by_p = (32 * 48)**2 * 4  # one fp32 P x P matrix
    assert rows['full']['peak_bytes'] >= p_by_p
    assert rows['sdpa']['peak_bytes'] < p_by_p / 4
    assert rows['sdpa']['loss'] == pytest.approx(rows['full']['loss'], rel=1e-5)
    assert all(r['student_grad'] for r in rows.values())
    printed = capsys.readouterr().out
    assert '| - | 1x8x32x48 | 1536 | sdpa |' in printed
    assert rows['sdpa']['cpu_seconds'] > 0


def test_tool_bad_arguments_name_the_option():
    tool = load_tool()
    with pytest.raises(SystemExit):
        tool.parse_args(['--batch', '0'])
    with pytest.raises(SystemExit):
        tool.parse_args(['--impl', 'flash'])
