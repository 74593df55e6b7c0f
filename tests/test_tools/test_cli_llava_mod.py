"""LLaVA-MoD through the CLI: teacher SFT -> stage 1 (dense mimic) -> stage 2 (upcycled
MoE, mimic + CE + balance) -> stage 3 (DPO with the teacher as reference) -> test."""
import os.path as osp

import pytest
import torch

from .cli import last_checkpoint, run_tool

CFG = 'configs/llava_mod/'
TEACHER = 'configs/llava_kd/llava_clip-w128-qwen2-w128-d4_shapes-vqa_teacher_demo.py'
PAIR = 'clip-w128-qwen2-w128-d4_to_w64-d2'
STAGES = [CFG + f'llava-mod_stage1-d2d-mimic_{PAIR}_shapes-vqa_demo.py',
          CFG + f'llava-mod_stage2-d2s-mimic_{PAIR}-moe4x2_shapes-vqa_demo.py',
          CFG + f'llava-mod_stage3-pref-dpo_{PAIR}-moe4x2_shapes-vqa_demo.py']
SMALL = ['train_dataloader.batch_size=4', 'train_dataloader.dataset.num_images=4',
         'val_dataloader.dataset.num_images=2', 'val_dataloader.batch_size=6',
         'default_hooks.logger.interval=1', 'param_scheduler=[]']


def small(iters):
    return [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters + 1}',
            f'default_hooks.checkpoint.interval={iters}', *SMALL]


@pytest.mark.slow
def test_llava_mod_three_stages(tmp_path):
    env = {'OMP_NUM_THREADS': '1'}
    wd = {name: str(tmp_path / name) for name in ('teacher', 's1', 's2', 's3')}
    run_tool('tools/train.py', TEACHER, '--work-dir', wd['teacher'], '--cfg-options', *small(2), env=env)
    teacher = last_checkpoint(wd['teacher'])
    prev = None
    for i, (cfg, name) in enumerate(zip(STAGES, ('s1', 's2', 's3'))):
        opts = [*small(2), f'model.teacher_ckpt={teacher}']
        if prev is not None:
            opts.append(f'model.student_ckpt={prev}')
        out = run_tool('tools/train.py', cfg, '--work-dir', wd[name], '--cfg-options', *opts, env=env)
        prev = last_checkpoint(wd[name])
        keys = torch.load(prev, map_location='cpu', weights_only=False)['state_dict'].keys()
        assert not any(k.startswith('teacher') for k in keys)
        experts = [k for k in keys if '.mlp.experts.3.' in k]
        assert bool(experts) == (i > 0), name  # dense in stage 1, upcycled from stage 2 on
        expected = ('distill.loss_mimic', 'distill.loss_mimic', 'distill.loss_pref')[i]
        assert expected in out and (i == 0 or 'loss_moe_aux' in out)
    out = run_tool('tools/test.py', STAGES[2], prev, '--cfg-options', f'model.teacher_ckpt={teacher}',
                   f'model.student_ckpt={prev}', *SMALL, env=env)
    assert 'vqa/accuracy' in out
    assert osp.isfile(prev)


@pytest.mark.slow
def test_flexible_runner_fsdp_on_two_cpu_processes(tmp_path):
    """FlexibleRunner + FSDPStrategy (mmkd.LLMFullyShardedDataParallel) with gloo on 2 CPU
    processes: train, validate (generation through the sharded model), save a full checkpoint
    that one process reads back."""
    from .cli import ROOT, run_two_process_fsdp_demo
    cfg = CFG + f'llava-mod_stage2-d2s-mimic_{PAIR}-moe4x2_shapes-vqa_fsdp_demo.py'
    wd = str(tmp_path / 'fsdp')
    out = run_two_process_fsdp_demo(cfg, wd, port=29763)
    assert 'vqa/accuracy' in out and 'loss_moe_aux' in out
    state = torch.load(last_checkpoint(wd), map_location='cpu', weights_only=False)['state_dict']
    assert any('.mlp.experts.3.' in k for k in state) and not any(k.startswith('teacher') for k in state)
    # the full state dict gathered on rank 0 loads into an unsharded student
    from mmengine.config import Config

    from mmkd.registry import MODELS
    model_cfg = Config.fromfile(osp.join(ROOT, cfg)).model
    model_cfg.teacher_ckpt = None
    model = MODELS.build(model_cfg)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and not [k for k in missing if not k.startswith('data_preprocessor')]
