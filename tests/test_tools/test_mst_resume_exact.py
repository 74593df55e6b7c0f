"""MST-Distill through tools/train.py: a run resumed inside the MaskNet stage, right at
its end, or inside the student stage ends with the weights, optimizer state and
logged losses of the uninterrupted run (fresh optimizer per stage and the MaskNets of
lowest val loss, issue 17)."""
import os.path as osp
import re

import pytest
import torch

from .cli import run_tool

MST_CFG = 'configs/mst_distill/mst-distill_mm-audio_resnet18-w8_xmdigits-10pct_demo.py'
TEACHERS = dict(mm='configs/mst_distill/teacher_mm_img-audio_xmdigits_demo.py',
                audio='configs/mst_distill/teacher_cm_audio_xmdigits_demo.py')


def losses(log):
    return {int(i): rest.strip() for i, rest in
            re.findall(r'Iter\(train\) \[\s*(\d+)/\d+\].*?data_time: \S+\s+(.*)', log)}


@pytest.mark.slow
def test_mst_resume_in_every_stage_is_exact(tmp_path):
    from mmkd.utils import build_task_model
    ckpts = {}
    for name, cfg in TEACHERS.items():
        torch.manual_seed(0)
        teacher, _ = build_task_model(dict(cfg_path=cfg))
        ckpts[name] = str(tmp_path / f'{name}.pth')
        torch.save({'state_dict': teacher.state_dict(), 'meta': {}}, ckpts[name])
    # iterations 0-1 cotrain, 2-4 masknet (evaluated after each), 5-7 student
    common = ['--cfg-options', f'model.teachers.mm.ckpt={ckpts["mm"]}',
              f'model.teachers.audio.ckpt={ckpts["audio"]}',
              'custom_hooks.0.stages=[[cotrain,2],[masknet,3],[student,3]]',
              'custom_hooks.0.masknet_val_interval=1', 'train_cfg.max_iters=8',
              'train_cfg.val_interval=100', 'default_hooks.checkpoint.interval=1',
              'default_hooks.checkpoint.max_keep_ckpts=10',
              'default_hooks.logger.interval=1', 'train_dataloader.batch_size=8',
              'randomness.seed=5', 'randomness.deterministic=True']
    env = dict(OMP_NUM_THREADS='1')
    straight = str(tmp_path / 'straight')
    log = run_tool('tools/train.py', MST_CFG, '--work-dir', straight, *common, env=env)
    assert "a fresh optimizer for stage 'masknet'" in log
    assert "a fresh optimizer for stage 'student'" in log
    assert len(re.findall(r'MaskNet val loss \S+ after iteration [345] ', log)) == 3, log[-3000:]
    kept = re.search(r'the next stage uses the MaskNets of iteration (\d)', log)
    assert kept, log[-3000:]
    reference = losses(log)
    final = torch.load(osp.join(straight, 'iter_8.pth'), weights_only=True)
    for split in (3, 5, 6):  # inside 'masknet', at its end, inside 'student'
        work = str(tmp_path / f'split_{split}')
        out = run_tool('tools/train.py', MST_CFG, '--work-dir', work, '--resume',
                       osp.join(straight, f'iter_{split}.pth'), *common, env=env)
        resumed = losses(out)
        assert sorted(resumed) == list(range(split + 1, 9)), (split, out[-3000:])
        for step in resumed:
            assert resumed[step] == reference[step], (split, step)
        if split <= 5:  # the switch to 'student' happens in this run
            assert f'the next stage uses the MaskNets of iteration {kept.group(1)}' in out
        ckpt = torch.load(osp.join(work, 'iter_8.pth'), weights_only=True)
        assert ckpt['state_dict'].keys() == final['state_dict'].keys()
        for key, value in final['state_dict'].items():
            assert torch.equal(value, ckpt['state_dict'][key]), (split, key)
        state_a, state_b = final['optimizer']['state'], ckpt['optimizer']['state']
        assert state_a.keys() == state_b.keys()
        for index in state_a:
            for name, value in state_a[index].items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(
                    state_b[index][name])), (split, index, name)
