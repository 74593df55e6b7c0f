"""TinyCLIP through the CLI: manual inheritance -> distillation -> test -> next stage of a
progressive chain (inherits from the distilled student)."""
import json

import pytest
import torch

from .cli import ROOT, last_checkpoint

CFG = 'configs/tinyclip/'
TEACHER = CFG + 'clip_vit-w64-d4_text-w64-d4_digits-shapes_demo.py'
SCRATCH = CFG + 'clip_vit-w32-d4_text-w64-d2_digits-shapes_scratch_demo.py'
MANUAL = CFG + 'tinyclip_vit-w64-to-w32_manual-inherit_digits-shapes_demo.py'
SMALL = ['train_dataloader.batch_size=8', 'train_dataloader.dataset.num_shapes=[16,16]',
         'val_dataloader.dataset.num_shapes=[16,16]', 'default_hooks.logger.interval=1']


def run_tool(*args):
    """Run a CLI tool in a subprocess with one thread (tiny models: the fastest, and no
    oversubscription of a shared CPU); fail with the log tail."""
    import os
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=900, env=dict(os.environ, OMP_NUM_THREADS='1'))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f'{" ".join(args)} failed:\n{out[-5000:]}'
    return out


def inherit_tool(*argv):
    """tools/model_converters/tinyclip_inherit.py's main, in this process (saves a start-up)."""
    import importlib.util
    import os.path as osp

    path = osp.join(ROOT, 'tools/model_converters/tinyclip_inherit.py')
    spec = importlib.util.spec_from_file_location('tinyclip_inherit', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(list(argv))


def small(iters):
    # no validation inside training (tools/test.py evaluates the result below)
    return [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters + 1}',
            f'default_hooks.checkpoint.interval={iters}', *SMALL]


@pytest.mark.slow
def test_manual_inheritance_distillation_and_next_stage(tmp_path):
    from mmengine.config import Config

    from mmkd.models.wrappers import OpenCLIPModel
    from mmkd.utils.checkpoint import load_state_dict_file
    work = str(tmp_path)
    # a teacher checkpoint (the demo trains it with tools/train.py; here random weights)
    torch.manual_seed(0)
    cfg = Config.fromfile(TEACHER)
    teacher = f'{work}/teacher.pth'
    torch.save({'state_dict': OpenCLIPModel(**{k: v for k, v in cfg.model.items() if k != 'type'})
                .state_dict(), 'meta': {}}, teacher)

    inherited = f'{work}/inherited.pth'
    inherit_tool('manual', TEACHER, teacher, SCRATCH,
             inherited)
    t_state = load_state_dict_file(teacher)
    i_state = load_state_dict_file(inherited)
    # image width 64 -> 32: front slices; text layers 0, 2 of 4
    assert torch.equal(i_state['clip.visual.conv1.weight'], t_state['clip.visual.conv1.weight'][:32])
    assert torch.equal(i_state['clip.transformer.resblocks.1.mlp.c_fc.weight'],
                       t_state['clip.transformer.resblocks.2.mlp.c_fc.weight'])

    opts = [f'model.teacher_ckpt={teacher}', f'model.architecture.init_checkpoint={inherited}']
    out = run_tool('tools/train.py', MANUAL, '--work-dir', f'{work}/manual', '--cfg-options',
                   *opts, *small(2))
    assert 'distill.loss_affinity' in out and 'loss_contrastive' not in out
    ckpt = last_checkpoint(f'{work}/manual')
    state = load_state_dict_file(ckpt)
    assert not any(k.startswith('teacher') for k in state), 'teacher weights leaked into the ckpt'
    assert any(k.startswith('architecture.clip.visual') for k in state)

    metrics_file = f'{work}/metrics.json'
    run_tool('tools/test.py', MANUAL, ckpt, '--work-dir', f'{work}/manual', '--out', metrics_file,
             '--cfg-options', *opts, *SMALL)
    metrics = json.load(open(metrics_file))
    assert 0 <= metrics['zero_shot/top1'] <= 100 and 0 <= metrics['retrieval/t2i_R@1'] <= 100

    # progressive chain: the next stage inherits from this stage's distilled student
    nxt = f'{work}/stage2.pth'
    inherit_tool('manual', MANUAL, ckpt, SCRATCH, nxt)
    n_state = load_state_dict_file(nxt)
    assert all(torch.equal(v, state[f'architecture.{k}']) for k, v in n_state.items())
