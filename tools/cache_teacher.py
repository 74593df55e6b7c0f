#!/usr/bin/env python
"""Run the teacher once over the training set and store what the losses read.

For each training sample and each of ``--draws`` augmentation draws, the sample is
produced under a seeded RNG (so training can replay the same augmentation), the
teacher runs (early exit: only up to the recorded tensors) and the tensors the
distillation losses read are stored, in fp16 by default, logits optionally as
top-k values + indices. Output: ``DIR/manifest.json`` + ``DIR/shard_XXXXX.pt``
(sharded, loadable with ``weights_only=True``), written to a temp dir and renamed.

Then train with the config's ``train_dataloader.dataset`` wrapped as
``dict(type='mmkd.CachedTeacherDataset', dataset=..., cache_dir=DIR, draws=R)``.

Usage: python tools/cache_teacher.py CONFIG --out DIR [--draws R] [--dtype fp16|fp32]
           [--topk K] [--shard-size N] [--batch-size B] [--cfg-options k=v ...]
"""
import argparse
import json
import os
import os.path as osp
import shutil
import sys
import tempfile
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config, DictAction  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Cache teacher outputs for distillation')
    parser.add_argument('config')
    parser.add_argument('--out', required=True, help='cache directory to create')
    parser.add_argument('--draws', type=int, default=None,
                        help='augmentation draws per sample (default: the wrapper\'s, else 1)')
    parser.add_argument('--dtype', choices=['fp16', 'fp32'], default='fp16')
    parser.add_argument('--topk', type=int, default=0,
                        help='store 2-D (N, C) logits as top-k values + indices (0 = all)')
    parser.add_argument('--shard-size', type=int, default=4096)
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import torch
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DATASETS as ROOT_DATASETS
    from mmengine.registry import init_default_scope
    from mmengine.utils import ProgressBar

    import mmkd  # noqa: F401
    from mmkd.datasets.cached_teacher import data_fingerprint, replay_rng
    from mmkd.registry import MODELS
    from mmkd.utils import register_all_modules
    register_all_modules()

    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    from mmkd.utils.model_builder import resolve_relative_cfg_paths
    resolve_relative_cfg_paths(cfg)
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    dataset_cfg = cfg.train_dataloader.dataset
    draws, seed = args.draws or 1, 0
    if dataset_cfg.get('type') in ('CachedTeacherDataset', 'mmkd.CachedTeacherDataset'):
        draws = args.draws or dataset_cfg.get('draws', 1)
        seed = dataset_cfg.get('seed', 0)
        dataset_cfg = dataset_cfg.dataset
    if osp.exists(args.out):
        raise SystemExit(f'error: --out {args.out!r} exists; remove it or choose another path')

    model = MODELS.build(cfg.model)
    if not hasattr(model, 'teacher_fingerprint'):
        raise SystemExit(f'error: {type(model).__name__} does not support cached teacher outputs')
    model.eval()
    dataset = ROOT_DATASETS.build(dataset_cfg)
    sources = model.distiller.teacher_sources()
    dtype = torch.float16 if args.dtype == 'fp16' else torch.float32

    parent = osp.dirname(osp.abspath(args.out))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix='.cache-tmp-')
    # mkdtemp makes it 0o700; the finished cache follows the umask like any directory
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    manifest = dict(version=1, sources=sources, draws=draws, seed=seed, dtype=args.dtype,
                    topk=args.topk or None, num_samples=len(dataset), shards=[],
                    num_classes={}, config=osp.basename(args.config),
                    teacher_fingerprint=model.teacher_fingerprint(),
                    data_fingerprint=data_fingerprint(dataset_cfg, draws, seed))
    shard = dict(index=[], draw=[], values={k: [] for k in sources}, indices={})

    def flush():
        if not shard['index']:
            return
        name = f'shard_{len(manifest["shards"]):05d}.pt'
        out = dict(index=torch.tensor(shard['index']), draw=torch.tensor(shard['draw']),
                   values={k: torch.stack(v) for k, v in shard['values'].items()},
                   indices={k: torch.stack(v) for k, v in shard['indices'].items()})
        torch.save(out, osp.join(tmp, name))
        manifest['shards'].append(name)
        shard['index'].clear()
        shard['draw'].clear()
        for v in shard['values'].values():
            v.clear()
        for v in shard['indices'].values():
            v.clear()

    start = time.time()
    jobs = [(i, d) for i in range(len(dataset)) for d in range(draws)]
    bar = ProgressBar(len(jobs), bar_width=30)
    try:
        for begin in range(0, len(jobs), args.batch_size):
            chunk = jobs[begin:begin + args.batch_size]
            items = []
            for index, draw in chunk:
                with replay_rng(seed, index, draw):
                    items.append(dataset[index])
            data = model.data_preprocessor(pseudo_collate(items), True)
            inputs = data.get('teacher_inputs', data['inputs'])
            model.distiller.teacher_recorders.reset()
            with torch.no_grad():
                model._teacher_forward(inputs, data['data_samples'])
            values = model.distiller.read_teacher_sources()
            for row, (index, draw) in enumerate(chunk):
                shard['index'].append(index)
                shard['draw'].append(draw)
                for key, value in values.items():
                    value = value[row].detach().cpu()
                    if args.topk and value.dim() == 1:
                        top = value.topk(min(args.topk, value.numel()))
                        manifest['num_classes'][key] = value.numel()
                        shard['indices'].setdefault(key, []).append(top.indices.to(torch.int32))
                        value = top.values
                    shard['values'][key].append(value.to(dtype))
            if len(shard['index']) >= args.shard_size:
                flush()
            bar.update(len(chunk))
        flush()
        with open(osp.join(tmp, 'manifest.json'), 'w') as f:
            json.dump(manifest, f, indent=2)
        os.replace(tmp, args.out)  # all or nothing
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    size = sum(osp.getsize(osp.join(args.out, n)) for n in os.listdir(args.out))
    print(f'\ncached {len(jobs)} teacher outputs ({len(dataset)} samples x {draws} draws, '
          f'{sources}) in {time.time() - start:.1f} s, {size / 2**20:.1f} MiB -> {args.out}')


if __name__ == '__main__':
    main()
