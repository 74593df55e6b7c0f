"""Run the CLI tools in a subprocess, as a user would, and fail with the log tail."""
import os
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def run_tool(*args, timeout=900, env=None, expect_fail=False):
    full_env = {**os.environ, 'OMP_NUM_THREADS': '2', **(env or {})}
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=full_env)
    out = proc.stdout + proc.stderr
    if expect_fail:
        assert proc.returncode != 0, out[-3000:]
    else:
        assert proc.returncode == 0, f'{" ".join(args)} failed:\n{out[-5000:]}'
    return out


def last_checkpoint(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def save_random_teacher(model_cfg, path, seed=0):
    """Build a teacher with random weights (seeded) and save it as a checkpoint.

    ``model_cfg``: a model dict or ``dict(cfg_path=...)``. Returns ``(path, state_dict)``.
    """
    import torch

    from mmkd.utils import build_task_model
    torch.manual_seed(seed)
    teacher, _ = build_task_model(model_cfg)
    state = teacher.state_dict()
    torch.save({'state_dict': state, 'meta': {}}, path)
    return str(path), {k: v.clone() for k, v in state.items()}


def run_two_process_fsdp_demo(config, work_dir, port):
    """An FSDP readiness demo under ``torch.distributed.run`` on 2 CPU processes (gloo):
    3 iterations, random teacher, validation on 4 images. Returns the log."""
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
           f'--master_port={port}', 'tools/train.py', config, '--launcher', 'pytorch',
           '--work-dir', str(work_dir), '--cfg-options', 'model.teacher_ckpt=None',
           'train_cfg.max_iters=3', 'train_cfg.val_interval=3', 'default_hooks.checkpoint.interval=3',
           'default_hooks.logger.interval=1', 'val_dataloader.dataset.num_images=4']
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, 'OMP_NUM_THREADS': '1'})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    return out


def config_dumping_predictions(config, folder, **metric_overrides):
    """Write a config that inherits ``config`` and adds mmengine's ``DumpResults`` after
    its own val and test metrics, so a test can read what was evaluated.

    ``metric_overrides`` are set in each of the config's own metrics (e.g. ``ann_file``;
    with the metrics now in a list, ``--cfg-options val_evaluator.ann_file=`` no longer
    reaches them). Returns ``(config_path, dict(val=pkl_path, test=pkl_path))``; each
    evaluation overwrites its file with the predictions of that evaluation.
    """
    from mmengine.config import Config
    base = config if osp.isabs(config) else osp.join(ROOT, config)
    cfg = Config.fromfile(base)
    lines, dumps = [f'_base_ = [{base!r}]'], {}
    for split in ('val', 'test'):
        metrics = cfg[f'{split}_evaluator']
        metrics = [dict(m) for m in (metrics if isinstance(metrics, (list, tuple)) else [metrics])]
        dumps[split] = osp.join(str(folder), f'{split}_predictions.pkl')
        metrics = [dict(m, **metric_overrides) for m in metrics]
        metrics.append(dict(type='DumpResults', out_file_path=dumps[split]))
        lines.append(f'{split}_evaluator = {metrics!r}')
    path = osp.join(str(folder), 'with_dumped_predictions.py')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return path, dumps


def load_predictions(path):
    """The predictions ``DumpResults`` wrote: one dict per evaluated sample."""
    import pickle
    with open(path, 'rb') as f:
        return pickle.load(f)


def logged_metric(out, key):
    """The last value of metric ``key`` the logger printed in ``out``, as printed
    (mmengine's LogProcessor: 4 decimals). Fails when the key was never logged."""
    import re
    values = re.findall(rf'\b{re.escape(key)}: (-?\d+\.\d+|nan|inf)', out)
    assert values, f'{key} was never logged:\n{out[-3000:]}'
    return values[-1]


def as_logged(value):
    """``value`` formatted as the logger prints a metric."""
    return f'{float(value):.4f}'


# What must be equal in two dumps of mmdet / mmseg predictions of the same weights.
DET_PREDICTION_FIELDS = ['img_id', 'pred_instances.bboxes', 'pred_instances.scores',
                         'pred_instances.labels']
SEG_PREDICTION_FIELDS = ['img_path', 'seg_logits.data', 'pred_sem_seg.data']


def assert_same_predictions(first, second, fields, atol=1e-5):
    """Two dumps hold the same samples with equal ``fields`` (dotted for nested dicts:
    'pred_instances.scores'): tensors within ``atol``, anything else equal."""
    import torch
    assert len(first) == len(second) > 0, (len(first), len(second))
    for i, (a, b) in enumerate(zip(first, second)):
        for field in fields:
            x, y = a, b
            for part in field.split('.'):
                x, y = x[part], y[part]
            if isinstance(x, torch.Tensor):
                assert x.shape == y.shape and torch.allclose(x.float(), y.float(), atol=atol, rtol=0), \
                    f'sample {i}: {field} differs: {x} vs {y}'
            else:
                assert x == y, f'sample {i}: {field} differs: {x!r} vs {y!r}'


def mean_iou(predictions, ignore_index=255):
    """mIoU (percent) of dumped mmseg predictions, counted directly: the mean over classes
    of intersection / union of the predicted and true masks summed over the images,
    pixels labelled ``ignore_index`` left out, classes absent from both left out."""
    import torch
    inter, union = {}, {}
    for p in predictions:
        pred, gt = p['pred_sem_seg']['data'].squeeze(0), p['gt_sem_seg']['data'].squeeze(0)
        keep = gt != ignore_index
        pred, gt = pred[keep], gt[keep]
        for c in torch.cat([pred.unique(), gt.unique()]).unique().tolist():
            inter[c] = inter.get(c, 0) + int(((pred == c) & (gt == c)).sum())
            union[c] = union.get(c, 0) + int(((pred == c) | (gt == c)).sum())
    return 100.0 * sum(inter[c] / union[c] for c in union) / len(union)


def check_test_run(out, metrics_file, metric_key, dump_file, val_predictions, val_metric,
                   det):
    """tools/test.py evaluated the student validated at the end of training: no empty
    results, the same predictions (boxes and scores / logits: other weights, e.g. random
    ones, would give others) and the same metric as logged then; every image has boxes
    (detection) or the mIoU is the one counted here (mmseg rounds to 2 decimals)."""
    import json
    import math
    assert 'results of the whole dataset is empty' not in out, out[-2000:]
    metric = json.load(open(metrics_file))[metric_key]
    assert isinstance(metric, float) and math.isfinite(metric), metric
    predictions = load_predictions(dump_file)
    assert_same_predictions(val_predictions, predictions,
                            DET_PREDICTION_FIELDS if det else SEG_PREDICTION_FIELDS)
    assert as_logged(metric) == val_metric
    if det:
        assert all(len(p['pred_instances']['scores']) > 0 for p in predictions)
    else:
        assert abs(metric - mean_iou(predictions)) < 0.006, (metric, mean_iou(predictions))
    return metric
