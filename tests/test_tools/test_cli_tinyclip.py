"""TinyCLIP through the CLI: manual inheritance -> distillation -> test -> next stage of a
progressive chain (inherits from the distilled student)."""
import json

import pytest
import torch

from .cli import (
    ROOT,
    as_logged,
    assert_same_predictions,
    config_dumping_predictions,
    last_checkpoint,
    load_predictions,
    logged_metric,
)

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
    # validation once, after the last iteration (mmengine validates at max_iters)
    return [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters + 1}',
            f'default_hooks.checkpoint.interval={iters}', *SMALL]


@pytest.mark.slow
def test_manual_inheritance_distillation_and_next_stage(tmp_path):
    from mmengine.config import Config

    from mmkd.models.task_models import OpenCLIPModel
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
    # MANUAL with its predictions dumped at validation and at test (metrics unchanged)
    config, dumps = config_dumping_predictions(MANUAL, tmp_path)
    out = run_tool('tools/train.py', config, '--work-dir', f'{work}/manual', '--cfg-options',
                   *opts, *small(2))
    assert 'distill.loss_affinity' in out and 'loss_contrastive' not in out
    keys = ('zero_shot/top1', 'retrieval/t2i_R@1')
    val_metrics = {k: logged_metric(out, k) for k in keys}
    val_predictions = load_predictions(dumps['val'])
    ckpt = last_checkpoint(f'{work}/manual')
    state = load_state_dict_file(ckpt)
    assert not any(k.startswith('teacher') for k in state), 'teacher weights leaked into the ckpt'
    assert any(k.startswith('architecture.clip.visual') for k in state)

    metrics_file = f'{work}/metrics.json'
    run_tool('tools/test.py', config, ckpt, '--work-dir', f'{work}/manual', '--out', metrics_file,
             '--cfg-options', *opts, *SMALL, 'test_dataloader.dataset.num_shapes=[16,16]')
    metrics = json.load(open(metrics_file))
    # test.py evaluated the student validated after iteration 2 (the same embeddings and
    # class scores, which other weights, e.g. random ones, would not give; the same
    # metrics as logged then) ...
    predictions = load_predictions(dumps['test'])
    assert_same_predictions(val_predictions, predictions,
                            ['source', 'caption', 'gt_label', 'img_embed', 'text_embed', 'pred_score'])
    assert {k: as_logged(metrics[k]) for k in keys} == val_metrics
    # ... and its metrics are those of these predictions, counted here: zero-shot top-1 on
    # the digits; text-to-image R@1 on the shapes (right: an image with the same caption)
    digits = [p for p in predictions if p['source'] == 'digits']
    top1 = 100.0 * sum(int(p['pred_score'].argmax()) == int(p['gt_label']) for p in digits) / len(digits)
    shapes = [p for p in predictions if p['source'] == 'shapes']
    images = torch.stack([p['img_embed'] for p in shapes])
    best = [int((images @ p['text_embed']).argmax()) for p in shapes]
    t2i = 100.0 * sum(shapes[b]['caption'] == p['caption'] for b, p in zip(best, shapes)) / len(shapes)
    assert abs(metrics['zero_shot/top1'] - top1) < 1e-4 and abs(metrics['retrieval/t2i_R@1'] - t2i) < 1e-4, \
        (metrics, top1, t2i)

    # progressive chain: the next stage inherits from this stage's distilled student
    nxt = f'{work}/stage2.pth'
    inherit_tool('manual', MANUAL, ckpt, SCRATCH, nxt)
    n_state = load_state_dict_file(nxt)
    assert all(torch.equal(v, state[f'architecture.{k}']) for k, v in n_state.items())
