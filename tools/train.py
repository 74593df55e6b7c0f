#!/usr/bin/env python
"""Train a model (plain task model or mmkd distillation) from a config.

Usage::

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]
"""
import argparse
import contextlib
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model with mmkd')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the given checkpoint, or from the latest one in the work dir '
        'when no path is given')
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
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


# What numpy says when mmengine's BaseDataset serialises an empty sample list.
_EMPTY_DATASET = 'need at least one array to concatenate'
_WHERE_KEYS = ('data_root', 'ann_file', 'data_prefix')


def describe_empty_dataset(key: str, loader_cfg) -> str:
    """The error for an empty data set: its config key, type and where it looked."""
    path, node = f'{key}.dataset', (loader_cfg or {}).get('dataset')
    # Wrappers (RepeatDataset, CachedTeacherDataset, ...) hold the data set that reads
    # the files under 'dataset': name that one.
    while (isinstance(node, dict) and isinstance(node.get('dataset'), dict)
           and not any(k in node for k in _WHERE_KEYS)):
        path, node = f'{path}.dataset', node['dataset']
    node = node if isinstance(node, dict) else {}
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


@contextlib.contextmanager
def explain_empty_datasets(runner, stages):
    """Name the config key of a data set that holds no sample.

    mmengine builds the data sets inside ``runner.train()`` / ``runner.test()``, and an
    empty one fails there with numpy's "need at least one array to concatenate". The
    loops are built in the order of ``stages`` (('train', 'val') or ('test',)); the
    first one still a config dict is the one whose data set failed. Any other error
    passes unchanged, so nothing is built twice and a normal run is not touched.
    """
    try:
        yield
    except ValueError as err:
        if _EMPTY_DATASET not in str(err):
            raise
        stage = next((s for s in stages if isinstance(getattr(runner, f'_{s}_loop', None), dict)),
                     None)
        if stage is None:
            raise
        key = f'{stage}_dataloader'
        raise ValueError(describe_empty_dataset(key, getattr(runner, f'_{key}', None))) from None


def main(argv=None):
    args = parse_args(argv)
    import mmkd  # noqa: F401  (version checks, torch.load allow-list)
    from mmkd.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = build_cfg(args)

    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    from mmkd.utils.dist import adapt_cfg_for_cpu_dist, finish_dist, init_cpu_dist_if_needed
    adapt_cfg_for_cpu_dist(cfg, args.launcher)
    init_cpu_dist_if_needed(args.launcher,
                            cfg.get('env_cfg', {}).get('dist_cfg', {}).get('backend', 'gloo'))
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    with explain_empty_datasets(runner, ('train', 'val')):
        runner.train()
    finish_dist()


if __name__ == '__main__':
    main()
