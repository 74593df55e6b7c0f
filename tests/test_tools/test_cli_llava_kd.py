"""LLaVA-KD through the CLI: a few iterations of the demo's distillation with tools/train.py,
then tools/test.py (VQA accuracy of the student), as a user runs them."""
import json
import os
import subprocess
import sys

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
    run_two_process_fsdp_demo,
)

CFG = 'configs/llava_kd/'
TEACHER = CFG + 'llava_clip-w128-qwen2-w128-d4_shapes-vqa_teacher_demo.py'
KD = CFG + 'llava-kd_clip-w128-qwen2-w128-d4_to_w64-d2_shapes-vqa_demo.py'
SMALL = ['train_dataloader.batch_size=4', 'train_dataloader.dataset.num_images=4',
         'val_dataloader.dataset.num_images=2', 'train_cfg.max_iters=3', 'train_cfg.val_interval=4',
         'default_hooks.checkpoint.interval=3', 'default_hooks.logger.interval=1']


def run_tool(*args):
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=900, env=dict(os.environ, OMP_NUM_THREADS='1'))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f'{" ".join(args)} failed:\n{out[-5000:]}'
    return out


@pytest.mark.slow
def test_llava_kd_demo_trains_and_tests(tmp_path):
    from mmengine.config import Config

    from mmkd.models.task_models import LlavaModel
    work = str(tmp_path)
    # a teacher checkpoint (the demo trains it with tools/train.py; here random weights)
    torch.manual_seed(0)
    cfg = Config.fromfile(TEACHER).model.to_dict()
    cfg.pop('type'), cfg.pop('_scope_')
    teacher = f'{work}/teacher.pth'
    torch.save({'state_dict': LlavaModel(**cfg).state_dict(), 'meta': {}}, teacher)

    # KD with its predictions dumped at validation and at test (metrics unchanged); 80
    # iterations (0.04 s each; validation once, at the end): enough for the student to
    # answer in words, where an untrained one answers ': : :' to all and scores 0
    config, dumps = config_dumping_predictions(KD, tmp_path)
    longer = ['train_cfg.max_iters=80', 'train_cfg.val_interval=80',
              'default_hooks.checkpoint.interval=80']
    out = run_tool('tools/train.py', config, '--work-dir', f'{work}/kd', '--cfg-options',
                   f'model.teacher_ckpt={teacher}', *SMALL, *longer)
    for name in ('loss_ce', 'distill.loss_mdist_res', 'distill.loss_mdist_vis', 'distill.loss_rdist'):
        assert name in out, name
    val_accuracy, val_predictions = logged_metric(out, 'vqa/accuracy'), load_predictions(dumps['val'])
    ckpt = last_checkpoint(f'{work}/kd')
    from mmkd.utils.checkpoint import load_state_dict_file
    state = load_state_dict_file(ckpt)
    assert not any(k.startswith('teacher') for k in state), 'teacher weights leaked into the ckpt'
    assert any(k.startswith('architecture.hf_model.language_model') for k in state)

    metrics = f'{work}/metrics.json'
    run_tool('tools/test.py', config, ckpt, '--work-dir', f'{work}/test', '--out', metrics,
             '--cfg-options', f'model.teacher_ckpt={teacher}', 'test_dataloader.dataset.num_images=2')
    with open(metrics) as f:
        result = json.load(f)
    # test.py evaluated the student validated after iteration 80: the same generated
    # answers and the same accuracy as logged then ...
    predictions = load_predictions(dumps['test'])
    assert_same_predictions(val_predictions, predictions,
                            ['sample_idx', 'question', 'gt_answer', 'pred_token_ids', 'pred_text'])
    assert as_logged(result['vqa/accuracy']) == val_accuracy
    # ... and its accuracies are the exact-match rates of these answers, counted here
    # (lower case, no punctuation or spaces at the ends)
    def norm(text):
        return ' '.join(text.lower().strip(' .,!?;:').split())

    right = [norm(p['pred_text']) == norm(p['gt_answer']) for p in predictions]
    assert 0 < sum(right), [(p['pred_text'], p['gt_answer']) for p in predictions]
    assert abs(result['vqa/accuracy'] - 100.0 * sum(right) / len(right)) < 1e-4, result
    for kind in {p['question_type'] for p in predictions}:
        hits = [r for r, p in zip(right, predictions) if p['question_type'] == kind]
        assert abs(result[f'vqa/acc_{kind}'] - 100.0 * sum(hits) / len(hits)) < 1e-4, (kind, result)


@pytest.mark.slow
def test_llava_kd_dist_train_two_processes(tmp_path):
    """DDP (gloo, 2 CPU processes) without find_unused_parameters: the vision layers
    after vision_feature_layer are frozen by LlavaModel, so no parameter goes unused."""
    work = str(tmp_path / 'dist')
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH'],
               PORT='29543', OMP_NUM_THREADS='1')
    proc = subprocess.run(['bash', 'tools/dist_train.sh', KD, '2', '--work-dir', work,
                           '--cfg-options', 'model.teacher_ckpt=None', *SMALL],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert 'GPU number: 2' in out and 'Iter(train) [3/3]' in out
    assert 'find_unused_parameters=True' not in open(os.path.join(work, os.path.basename(KD))).read()


@pytest.mark.slow
def test_llava_kd_flexible_runner_fsdp_on_two_cpu_processes(tmp_path):
    """FlexibleRunner + FSDPStrategy (mmkd.LLMFullyShardedDataParallel) with gloo on 2 CPU
    processes: CE + MDist + RDist with the teacher outside the FSDP units, validation by
    generation through the sharded student, a full checkpoint on rank 0 without the teacher
    that loads into an unsharded LlavaKDDistill."""
    from mmengine.config import Config

    from mmkd.registry import MODELS
    cfg = CFG + 'llava-kd_clip-w128-qwen2-w128-d4_to_w64-d2_shapes-vqa_fsdp_demo.py'
    wd = str(tmp_path / 'fsdp')
    out = run_two_process_fsdp_demo(cfg, wd, port=29764)
    assert 'Iter(train) [3/3]' in out and 'vqa/accuracy' in out
    for name in ('loss_ce', 'distill.loss_mdist_res', 'distill.loss_mdist_vis', 'distill.loss_rdist'):
        assert name in out, name
    state = torch.load(last_checkpoint(wd), map_location='cpu', weights_only=False)['state_dict']
    assert not any(k.startswith('teacher') or '._teacher' in k for k in state), 'teacher in the ckpt'
    assert any(k.startswith('architecture.hf_model.language_model') for k in state)
    # the full state dict gathered on rank 0 loads into an unsharded LlavaKDDistill
    model_cfg = Config.fromfile(os.path.join(ROOT, cfg)).model
    model_cfg.teacher_ckpt = None
    model = MODELS.build(model_cfg)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    assert not [k for k in missing if not k.startswith('data_preprocessor')], missing
