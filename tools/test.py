#!/usr/bin/env python
"""Evaluate a checkpoint (of a task model or of an mmkd algorithm: the student is tested).

Usage::

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE] [--student NAME]
        [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]

CHECKPOINT may be a distillation checkpoint (``work_dirs/NAME/iter_N.pth``), a plain
task-model checkpoint or a student converted by
``tools/model_converters/convert_kd_ckpt_to_student.py``, with a distillation config or
with the student's own config: the student is loaded strictly (a plain student goes
into the distillation model's ``architecture``, a distillation checkpoint gives its
student to a plain config), and what was loaded is logged. A file that does not fit,
or none of whose tensors match, stops with an error naming it; nothing is evaluated
with random weights. ``--student NAME`` picks a student where the model or the
checkpoint has several (``CollaborativeDistill``); it is also the student evaluated.
Frozen teachers are not loaded (their checkpoints need not exist): only their structure
is built, on the meta device, and the log says so.
"""
import argparse
import importlib.util
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config, DictAction  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (evaluate) a model with mmkd')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs and metrics')
    parser.add_argument('--out', help='dump the metrics to this json/yaml/pkl file')
    parser.add_argument('--student', default=None,
                        help='with several students (CollaborativeDistill), in the model or '
                        'in the checkpoint: the one to load a single-student checkpoint into '
                        'or out of, and to evaluate')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value pairs')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def _train_tool():
    """tools/train.py, loaded by path (``tools`` is not a package), for its shared helpers."""
    spec = importlib.util.spec_from_file_location(
        'mmkd_tools_train', osp.join(osp.dirname(osp.abspath(__file__)), 'train.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    args = parse_args(argv)
    import mmkd  # noqa: F401
    from mmkd.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    if not osp.isfile(args.config):
        raise SystemExit(f'error: config file {args.config!r} does not exist')
    from mmkd.utils.checkpoint import check_checkpoint_file, is_url
    if not is_url(args.checkpoint):
        check_checkpoint_file(args.checkpoint, 'checkpoint')  # before anything is built
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
    cfg.load_from = args.checkpoint
    cfg.resume = False

    from mmengine.runner import Runner

    from mmkd.utils.dist import adapt_cfg_for_cpu_dist, finish_dist, init_cpu_dist_if_needed
    adapt_cfg_for_cpu_dist(cfg, args.launcher)
    init_cpu_dist_if_needed(args.launcher,
                            cfg.get('env_cfg', {}).get('dist_cfg', {}).get('backend', 'gloo'))
    # Testing evaluates the student: teachers are built as structure only, and their
    # checkpoints are not read (mmkd.models.teachers.teachers_not_loaded).
    from mmkd.models.teachers import teachers_not_loaded
    with teachers_not_loaded('tools/test.py evaluates the student only'):
        runner = Runner.from_cfg(cfg)

    from mmengine.model import is_model_wrapper

    from mmkd.engine.runner_checkpoints import prepare_checkpoint, serve_checkpoints
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    if args.student is not None and hasattr(model, 'eval_student'):
        model.eval_student = args.student  # checked (and refused with the choices) there
    # Read once, safely, fitted to the model and checked strictly; mmengine's own
    # load_from (non-strict, silent when nothing matches) gets the fitted checkpoint.
    served, _ = prepare_checkpoint(runner, args.checkpoint, 'checkpoint', student=args.student)
    with serve_checkpoints(served, key='checkpoint'), \
            _train_tool().explain_empty_datasets(runner, ('test', )):
        metrics = runner.test()
    finish_dist()
    if args.out:
        from mmengine.fileio import dump
        dump({k: float(v) if hasattr(v, '__float__') else v for k, v in metrics.items()}, args.out)
    return metrics


if __name__ == '__main__':
    from mmkd.engine.runner_checkpoints import run_cli
    run_cli(main)
