"""G2SD through the CLI, shortened: generic stage (2 steps) -> convert to a DeiT ->
specific stage with a teacher classifier (2 steps + validation)."""
import pytest
import torch

from .cli import last_checkpoint, run_tool
from .mae_distill_cli_helpers import SHORT, convert_main, save_random, teacher_mae  # noqa: F401

G2SD = 'configs/g2sd/g2sd-generic_vit-d8-w128_vit-d4-w64_p4_digits_demo.py'
SPECIFIC = 'configs/g2sd/g2sd-specific_vit-d8-w128_deit-d4-w64_p4_digits-10pct_demo.py'


@pytest.mark.slow
def test_g2sd_generic_then_specific(tmp_path, teacher_mae):  # noqa: F811 (fixture)
    work = str(tmp_path / 'g2sd')
    out = run_tool('tools/train.py', G2SD, '--work-dir', work, '--cfg-options',
                   f'model.teacher_ckpt={teacher_mae}', *SHORT)
    assert 'distill.loss_g2sd' in out and 'loss_mae' not in out
    deit = str(tmp_path / 'deit.pth')
    convert_main([last_checkpoint(work), deit, '--distilled'])
    teacher_cls = save_random('configs/g2sd/vit-d8-w128_p4_digits-10pct_ft-mae_demo.py',
                              tmp_path / 'teacher_cls.pth')
    spec = str(tmp_path / 'spec')
    out = run_tool('tools/train.py', SPECIFIC, '--work-dir', spec, '--cfg-options',
                   f'model.teacher_ckpt={teacher_cls}',
                   f'model.architecture.backbone.init_cfg.checkpoint={deit}',
                   'train_cfg.val_interval=2', *SHORT)
    assert f'load backbone. in model from: {deit}' in out
    assert 'missing keys' not in out and 'unexpected key' not in out
    assert 'distill.loss_hard' in out and 'accuracy/top1' in out
    state = torch.load(last_checkpoint(spec), weights_only=True)['state_dict']
    assert 'architecture.head.layers.head_dist.weight' in state
    assert not any(k.startswith('teacher') for k in state)

    # the student converts to a plain mmpretrain DeiT classifier, loaded strictly
    student_file = str(tmp_path / 'deit_student.pth')
    run_tool('tools/model_converters/convert_kd_ckpt_to_student.py', last_checkpoint(spec),
             student_file)
    from mmengine.config import Config
    from mmpretrain.registry import MODELS as PRETRAIN
    cfg = Config.fromfile(SPECIFIC).model.architecture
    cfg.backbone.init_cfg = None
    cfg.head.type = 'DeiTClsHead'  # mmpretrain's own inference head
    cfg.head.pop('inference')
    assert cfg['_scope_'] == 'mmpretrain'
    plain = PRETRAIN.build(cfg)
    plain.load_state_dict(torch.load(student_file, weights_only=True)['state_dict'], strict=True)
