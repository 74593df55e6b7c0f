#!/usr/bin/env python
"""Train a model (plain task model or mmkd distillation) from a config.

Usage::

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT | auto]] [--amp]
        [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]

``--resume`` continues the run whose latest checkpoint ``WORK_DIR/last_checkpoint``
names, and stops with an error when there is none; ``--resume auto`` resumes when there
is a checkpoint and otherwise logs that it starts from scratch (mmengine's
``resume=True``); ``--resume FILE`` resumes that file. Only a training checkpoint of
this config resumes; to start from weights (e.g. a plain or converted student for a
distillation config) use ``--cfg-options load_from=FILE``: a plain student is loaded
into the distillation model's student strictly (``load_from_strict = False`` in the
config loads what fits, e.g. to fine-tune from a model with another head, and lists the
rest). Every checkpoint is read with mmkd's safe loader, and every mistake stops with an
error that names the file.
"""
import argparse
import contextlib
import os
import os.path as osp
import re
import sys
from typing import Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402

# Must match mmkd.engine.runner_checkpoints.RESUME_LATEST (not imported here: `--help`
# stays fast).
RESUME_LATEST = '<latest>'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model with mmkd')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume', nargs='?', type=str, const=RESUME_LATEST, metavar='CKPT | auto',
        help='resume from the given checkpoint; with no value, from the latest one in the '
        'work dir (an error when there is none); `auto`: resume the latest one if there is '
        'one, else start from scratch')
    parser.add_argument(
        '--student', default=None,
        help='for a model with several students (CollaborativeDistill) or a checkpoint '
        'with several: which student a single-student load_from checkpoint belongs to')
    parser.add_argument('--amp', action='store_true', help='enable automatic mixed precision')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate with the total batch size')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value pairs (xxx=yyy)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def build_cfg(args) -> Config:
    if not osp.isfile(args.config):
        raise SystemExit(f'error: config file {args.config!r} does not exist')
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    # a relative cfg_path is next to the config file that spells it, as _base_ is
    from mmkd.utils.model_builder import resolve_relative_cfg_paths
    resolve_relative_cfg_paths(cfg)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if optim_wrapper in ('AmpOptimWrapper', 'CPUAmpOptimWrapper', 'mmkd.CPUAmpOptimWrapper'):
            print('AMP is already enabled in the config')
        elif not torch.cuda.is_available():
            # mmengine's AmpOptimWrapper needs a GPU; on CPU autocast to bf16 instead.
            print('--amp without a GPU: bf16 autocast on CPU (mmkd.CPUAmpOptimWrapper)')
            cfg.optim_wrapper.type = 'mmkd.CPUAmpOptimWrapper'
            cfg.optim_wrapper.pop('loss_scale', None)
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise SystemExit('error: --auto-scale-lr needs `auto_scale_lr.base_batch_size` '
                             'in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume is not None:
        cfg.resume = True
        cfg.load_from = None  # set once resolved (resolve_resume in main)
    return cfg


# What numpy says when mmengine's BaseDataset serialises an empty sample list.
_EMPTY_DATASET = 'need at least one array to concatenate'
_WHERE_KEYS = ('data_root', 'ann_file', 'data_prefix')


def _dataset_node(loader_cfg, key):
    """The data set config that reads the files (inside wrappers), and its config key.

    Wrappers (RepeatDataset, CachedTeacherDataset, ...) hold the data set that reads the
    files under 'dataset': that one is named.
    """
    path, node = f'{key}.dataset', (loader_cfg or {}).get('dataset')
    while (isinstance(node, dict) and isinstance(node.get('dataset'), dict)
           and not any(k in node for k in _WHERE_KEYS)):
        path, node = f'{path}.dataset', node['dataset']
    return path, (node if isinstance(node, dict) else {})


def cached_teacher_dir(loader_cfg) -> Optional[str]:
    """The ``cache_dir`` of a CachedTeacherDataset in the training set (wrappers included)."""
    node = (loader_cfg or {}).get('dataset')
    while isinstance(node, dict):
        if str(node.get('type', '')).split('.')[-1] == 'CachedTeacherDataset':
            return node.get('cache_dir') or None
        node = node.get('dataset')
    return None


def describe_empty_dataset(key: str, loader_cfg) -> str:
    """The error for an empty data set: its config key, type and where it looked."""
    path, node = _dataset_node(loader_cfg, key)
    where = ', '.join(f'{k}={node.get(k)!r}' for k in _WHERE_KEYS)
    root, ann = node.get('data_root'), node.get('ann_file')
    if isinstance(root, str) and isinstance(ann, str) and ann and not osp.isabs(ann):
        where += f' (annotation file {osp.join(root, ann)!r})'
    filters = node.get('filter_cfg')
    keep = (f', and that {path}.filter_cfg={filters!r} keeps some of them' if filters else '')
    return (f'{path} (type {node.get("type")!r}) is empty: it found no sample with {where}. '
            f'Check that {path}.data_root, ann_file and data_prefix point to the data and '
            f'that the annotation file / image folder lists at least one sample{keep}. '
            f'(Raised while building {key}, before any step.)')


def _json_problem(file) -> Optional[str]:
    """'is empty (0 bytes)' / 'is not valid JSON' for a broken json file, else None."""
    import json
    if not isinstance(file, str) or not osp.isfile(file):
        return None
    if osp.getsize(file) == 0:
        return 'is empty (0 bytes)'
    try:
        with open(file, encoding='utf-8') as f:
            json.load(f)
    except (ValueError, UnicodeDecodeError):
        return 'is not valid JSON'
    return None


def describe_bad_annotation_file(stage: str, runner, err: Exception) -> Optional[str]:
    """The error for a json annotation file that does not parse: its config key and file.

    The data set (``<stage>_dataloader.dataset.ann_file``) and the evaluator
    (``<stage>_evaluator.ann_file``, e.g. CocoMetric) both read one; the one that does
    not parse is named. None when neither is broken (the error came from elsewhere).
    """
    key = f'{stage}_dataloader'
    path, node = _dataset_node(getattr(runner, f'_{key}', None), key)
    root, ann = node.get('data_root'), node.get('ann_file')
    file = ann
    if isinstance(root, str) and isinstance(ann, str) and ann and not osp.isabs(ann):
        file = osp.join(root, ann)
    evaluator = getattr(runner, f'_{stage}_evaluator', None)
    evaluators = evaluator if isinstance(evaluator, (list, tuple)) else [evaluator]
    candidates = [(f'{path}.ann_file', ann, file, node.get('type'), 'data set')]
    for i, ev in enumerate(evaluators):
        if isinstance(ev, dict) and isinstance(ev.get('ann_file'), str):
            name = f'{stage}_evaluator' + (f'[{i}]' if len(evaluators) > 1 else '')
            candidates.append((f'{name}.ann_file', ev['ann_file'], ev['ann_file'],
                               ev.get('type'), 'metric'))
    for config_key, value, resolved, kind, role in candidates:
        problem = _json_problem(resolved)
        if problem:
            return (f'{config_key}={value!r} (the file {resolved!r}) {problem}: '
                    f'{type(err).__name__}: {err}. The {role} (type {kind!r}) reads it as a '
                    'json annotation file (COCO format for CocoDataset / CocoMetric); '
                    'regenerate or re-download it (the generated demo data: `python '
                    'tools/dataset_converters/generate_shapes.py --out DATA_ROOT`). (Raised '
                    f'while building the {stage} loop, before any step.)')
    return None


@contextlib.contextmanager
def explain_empty_datasets(runner, stages):
    """Name the config key of a data set that holds no sample or has a broken json file.

    mmengine builds the data sets inside ``runner.train()`` / ``runner.test()``, and an
    empty one fails there with numpy's "need at least one array to concatenate"; a
    zero-byte or truncated COCO json fails in pycocotools with "Expecting value: line 1
    column 1 (char 0)". The loops are built in the order of ``stages`` (('train',
    'val') or ('test',)); the first one still a config dict is the one whose data set
    failed. Any other error passes unchanged, so nothing is built twice and a normal
    run is not touched.
    """
    import json
    try:
        yield
    except ValueError as err:
        bad_json = isinstance(err, json.JSONDecodeError)
        if not bad_json and _EMPTY_DATASET not in str(err):
            raise
        stage = next((s for s in stages if isinstance(getattr(runner, f'_{s}_loop', None), dict)),
                     None)
        if stage is None:
            raise
        key = f'{stage}_dataloader'
        if bad_json:
            message = describe_bad_annotation_file(stage, runner, err)
            if message is None:
                raise
            raise ValueError(message) from None
        raise ValueError(describe_empty_dataset(key, getattr(runner, f'_{key}', None))) from None


_LABEL_OUT_OF_RANGE = re.compile(r'Target (-?\d+) is out of bounds|t >= 0 && t < n_classes')


def _num_classes(model) -> Optional[int]:
    from mmengine.model import is_model_wrapper

    from mmkd.utils.checkpoint_kinds import student_slots
    model = model.module if is_model_wrapper(model) else model
    if 'architecture' in student_slots(model):
        model = model.architecture
    for head in ('decode_head', 'head', 'bbox_head'):
        n = getattr(getattr(model, head, None), 'num_classes', None)
        if isinstance(n, int):
            return n
    return None


@contextlib.contextmanager
def explain_label_errors(runner):
    """Name the data set when a training label lies outside the model's classes.

    A segmentation mask (or class label) with a value >= num_classes (other than
    ignore_index) fails deep inside torch's cross entropy ("Target 7 is out of
    bounds."), naming neither the data nor the key; this names both.
    """
    try:
        yield
    except (IndexError, RuntimeError) as err:
        match = _LABEL_OUT_OF_RANGE.search(str(err))
        if not match:
            raise
        loader_cfg = runner.cfg.get('train_dataloader')
        path, node = _dataset_node(loader_cfg, 'train_dataloader')
        where = ', '.join(f'{k}={node.get(k)!r}' for k in _WHERE_KEYS if k in node)
        n = _num_classes(runner.model)
        valid = f'0..{n - 1}' if n else '0..num_classes-1'
        label = f'label {match.group(1)}' if match.group(1) else 'a label'
        raise ValueError(
            f'a training sample has {label}, outside the classes of the model (num_classes='
            f'{n if n else "?"}: valid labels are {valid} and the loss\'s ignore_index, 255 '
            f'for mmseg); torch said {type(err).__name__}: {str(err).rstrip(".")}. Check the '
            'labels / '
            f'segmentation masks of {path} (type {node.get("type")!r}, {where}): every mask '
            'value must be a class index or ignore_index. For masks whose 0 is background '
            f'and whose classes start at 1 set {path}.reduce_zero_label=True; or set the '
            "model's num_classes to the data's number of classes.") from None


def main(argv=None):
    args = parse_args(argv)
    import mmkd  # noqa: F401  (version checks, torch.load allow-list)
    from mmkd.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = build_cfg(args)

    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    from mmkd.engine.runner_checkpoints import (
        explain_resume_errors,
        prepare_checkpoint,
        resolve_resume,
        serve_checkpoints,
    )
    from mmkd.utils.checkpoint import check_checkpoint_file, is_url
    from mmkd.utils.dist import adapt_cfg_for_cpu_dist, finish_dist, init_cpu_dist_if_needed

    # Before anything is built: a bare --resume with nothing to resume stops here. The
    # config's own `resume = True` without load_from is mmengine's resume-or-fresh, as
    # `--resume auto`.
    resume = args.resume
    if resume is None and cfg.get('resume', False) and not cfg.get('load_from'):
        resume = 'auto'
    resume_from, resume_note = resolve_resume(resume, cfg.work_dir)
    if resume is not None:
        cfg.resume = resume_from is not None
        cfg.load_from = resume_from
    key = ('--resume' if args.resume is not None else
           'load_from (resume=True)' if cfg.resume else 'load_from')
    if cfg.get('load_from') and not is_url(cfg.load_from):
        check_checkpoint_file(cfg.load_from, key)  # an empty/truncated/text file: before building
    adapt_cfg_for_cpu_dist(cfg, args.launcher)
    init_cpu_dist_if_needed(args.launcher,
                            cfg.get('env_cfg', {}).get('dist_cfg', {}).get('backend', 'gloo'))
    cache_dir = cached_teacher_dir(cfg.get('train_dataloader'))
    if cache_dir is not None:
        # The teacher's outputs are replayed from the cache: it is not loaded (nor run).
        from mmkd.models.teachers import teachers_not_loaded
        building = teachers_not_loaded(
            f'the training set replays teacher outputs cached in {cache_dir!r} '
            '(train_dataloader.dataset.cache_dir)')
    else:
        building = contextlib.nullcontext()
    with building:
        runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    if resume_note:
        runner.logger.info(resume_note)
    served, resumed = {}, None
    if cfg.get('load_from'):
        # Read once, safely, checked against the model; mmengine gets it from
        # serve_checkpoints (after the model's init_weights, as for its own loads).
        # load_from is strict on the student part unless the config says
        # `load_from_strict = False` (fine-tuning from a model with another head).
        served, info = prepare_checkpoint(
            runner, cfg.load_from, key, resume=bool(cfg.resume), student=args.student,
            strict=bool(cfg.get('load_from_strict', True)),
            strict_option='`load_from_strict = False` in the config (or --cfg-options '
            'load_from_strict=False)')
        resumed = info if cfg.resume else None
    with serve_checkpoints(served, key='checkpoint'), explain_resume_errors(runner, resumed), \
            explain_label_errors(runner), explain_empty_datasets(runner, ('train', 'val')):
        runner.train()
    finish_dist()


if __name__ == '__main__':
    from mmkd.engine.runner_checkpoints import run_cli
    run_cli(main)
