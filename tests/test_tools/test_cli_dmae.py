"""DMAE through the CLI, shortened: pre-train (2 steps) -> convert -> fine-tune (2 steps +
validation), as tools/demo/mae_distill_demo.py does at full length."""
import pytest
import torch

from .cli import last_checkpoint, run_tool
from .mae_distill_cli_helpers import SHORT, convert_main, teacher_mae  # noqa: F401

DMAE = 'configs/dmae/dmae_vit-d8-w128_vit-d4-w64_p4_digits_demo.py'
FT_DMAE = 'configs/dmae/vit-d4-w64_p4_digits-10pct_ft-dmae_demo.py'


@pytest.mark.slow
def test_dmae_pretrain_convert_finetune(tmp_path, teacher_mae):  # noqa: F811 (fixture)
    work = str(tmp_path / 'dmae')
    out = run_tool('tools/train.py', DMAE, '--work-dir', work, '--cfg-options',
                   f'model.teacher_ckpt={teacher_mae}', *SHORT)
    assert 'loss_mae' in out and 'distill.loss_dmae' in out
    ckpt = last_checkpoint(work)
    state = torch.load(ckpt, weights_only=True)['state_dict']
    assert not any(k.startswith('teacher') for k in state), 'teacher weights leaked'
    assert any(k.startswith('architecture.backbone.layers') for k in state)
    vit = str(tmp_path / 'vit.pth')
    convert_main([ckpt, vit, '--no-final-norm', '--out-type', 'avg_featmap'])
    ft = str(tmp_path / 'ft')
    out = run_tool('tools/train.py', FT_DMAE, '--work-dir', ft, '--cfg-options',
                   f'model.backbone.init_cfg.checkpoint={vit}', 'train_cfg.val_interval=2', *SHORT)
    assert f'load backbone. in model from: {vit}' in out  # init_cfg Pretrained, prefix
    assert 'missing keys' not in out and 'unexpected key' not in out  # a complete load
    assert 'accuracy/top1' in out
