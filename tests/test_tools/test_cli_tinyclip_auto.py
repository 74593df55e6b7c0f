"""TinyCLIP automatic inheritance through the CLI: mask phase -> prune -> pruned student."""
import json

import pytest
import torch

from .cli import ROOT, last_checkpoint

CFG = 'configs/tinyclip/'
MASKS = CFG + 'tinyclip-auto_vit-w64_masks_digits-shapes_demo.py'
PRUNED = CFG + 'tinyclip-auto_vit-w64_pruned_digits-shapes_demo.py'
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
def test_mask_phase_prune_and_pruned_training(tmp_path):
    from mmengine.config import Config

    from mmkd.models.task_models import OpenCLIPModel
    from mmkd.utils.checkpoint import load_state_dict_file
    cfg = Config.fromfile(CFG + 'clip_vit-w64-d4_text-w64-d4_digits-shapes_demo.py')
    torch.manual_seed(0)
    teacher = OpenCLIPModel(**{k: v for k, v in cfg.model.items() if k != 'type'})
    teacher_ckpt = str(tmp_path / 'teacher.pth')
    torch.save({'state_dict': teacher.state_dict(), 'meta': {}}, teacher_ckpt)

    work = str(tmp_path)
    opts = [f'model.teacher_ckpt={teacher_ckpt}', f'model.architecture.init_checkpoint={teacher_ckpt}',
            # a sparsity target reached at once, so that 3 iterations already prune something
            'model.architecture.sparsity.warmup_iters=0']
    out = run_tool('tools/train.py', MASKS, '--work-dir', f'{work}/masks', '--cfg-options', *opts,
                   *small(3))
    assert 'loss_lagrangian' in out and 'expected_sparsity' in out and 'distill.loss_affinity' in out
    ckpt = last_checkpoint(f'{work}/masks')
    assert any('l0_masks' in k for k in load_state_dict_file(ckpt))

    pruned = f'{work}/pruned.pth'
    inherit_tool('prune', MASKS, ckpt, pruned)
    meta = torch.load(pruned, weights_only=True)['meta']
    assert set(meta['clip_structure']) == {'visual', 'text'}
    assert meta['params'][0] <= meta['params'][1]

    opts = [f'model.teacher_ckpt={teacher_ckpt}', f'model.architecture.init_checkpoint={pruned}',
            f'model.architecture.pruned_structure={pruned}']
    out = run_tool('tools/train.py', PRUNED, '--work-dir', f'{work}/pruned', '--cfg-options', *opts,
                   *small(2))
    assert 'distill.loss_affinity' in out and 'loss_lagrangian' not in out
    final = last_checkpoint(f'{work}/pruned')
    state = load_state_dict_file(final)
    width = meta['clip_structure']['visual']['width']
    assert state['architecture.clip.visual.conv1.weight'].shape[0] == width
    metrics_file = f'{work}/metrics.json'
    run_tool('tools/test.py', PRUNED, final, '--work-dir', f'{work}/pruned', '--out', metrics_file,
             '--cfg-options', *opts, *SMALL)
    assert 'zero_shot/top1' in json.load(open(metrics_file))

    # a checkpoint without masks is refused with a message that says so
    with pytest.raises(SystemExit, match='l0_masks'):
        inherit_tool('prune', MASKS, teacher_ckpt, f'{work}/x.pth')
