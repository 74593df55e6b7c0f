"""Replay stored teacher outputs instead of running the teacher (FKD-style caching)."""
from __future__ import annotations

import json
import os.path as osp
import random
from typing import Dict, List, Optional, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from mmkd.registry import DATASETS

# The fingerprints live in mmkd.utils (the models check them too; models never import
# datasets); re-exported here, where the cache is written and read.
from mmkd.utils.fingerprint import (  # noqa: E402,F401
    CACHE_VERSION,
    data_fingerprint,
    file_sha256,
    teacher_fingerprint,
)


class replay_rng:
    """Context: seed python/numpy/torch RNGs from (seed, index, draw), restore after.

    Data pipelines draw their random augmentation parameters (crop boxes, flips)
    from these global generators; seeding them per (sample, draw) makes the
    augmentation reproducible, so a stored teacher output matches the image the
    student sees. The previous generator states are restored on exit.
    """

    def __init__(self, seed: int, index: int, draw: int) -> None:
        self.value = (seed * 1_000_003 + index * 9_176 + draw * 7_919) % (2**31 - 1)

    def __enter__(self):
        self.states = (random.getstate(), np.random.get_state(), torch.get_rng_state())
        random.seed(self.value)
        np.random.seed(self.value)
        torch.manual_seed(self.value)
        return self

    def __exit__(self, *exc):
        random.setstate(self.states[0])
        np.random.set_state(self.states[1])
        torch.set_rng_state(self.states[2])


def expand_topk(values: torch.Tensor, indices: torch.Tensor, num_classes: int,
                fill: float = -1e4) -> torch.Tensor:
    """Logits from top-k values/indices; the other classes get ``min - 1e4``-ish logits,
    i.e. (numerically) zero probability at any temperature used in practice."""
    out = torch.full(values.shape[:-1] + (num_classes, ), fill, dtype=torch.float32)
    low = values.float().min(dim=-1, keepdim=True).values + fill
    out = low.expand_as(out).clone()
    out.scatter_(-1, indices.long(), values.float())
    return out


@DATASETS.register_module()
class CachedTeacherDataset(Dataset):
    """Wrap a training set so each sample carries the teacher outputs stored for it.

    Every item is produced under :class:`replay_rng` for (seed, index, draw), with
    ``draw`` chosen at random among the ``draws`` stored per sample, so the random
    augmentation is exactly the one the teacher saw when the cache was written. The
    stored tensors are attached to the data sample as ``teacher_outputs`` (a dict by
    source key) with the cache's ``teacher_fingerprint``; ``SingleTeacherDistill``
    then skips the teacher forward, after checking on the first batch that the
    fingerprint matches its own teacher config, checkpoint and sources.

    Two fingerprints guard the cache: the data one (data set config with its
    pipeline, draws, seed) is checked here when the wrapper is built; the teacher
    one (teacher config, checkpoint bytes, sources) by the algorithm.

    With ``cache_dir=None`` the wrapper only replays the augmentation and the teacher
    runs online: an online run and a cached run then see identical data.

    Args:
        dataset (dict | Dataset): the training set (built from its config).
        cache_dir (str, optional): written by ``tools/cache_teacher.py``.
        draws (int): augmentation draws per sample.
        seed (int): replay seed.
    """

    def __init__(self,
                 dataset: Union[dict, Dataset],
                 cache_dir: Optional[str] = None,
                 draws: int = 1,
                 seed: int = 0) -> None:
        self.dataset_cfg = dataset if isinstance(dataset, dict) else getattr(dataset, 'cfg', {})
        if isinstance(dataset, dict):
            from mmengine.registry import DATASETS as ROOT
            dataset = ROOT.build(dataset)
        self.dataset = dataset
        if draws < 1:
            raise ValueError(f'draws must be >= 1, got {draws}')
        self.draws = draws
        self.seed = seed
        self.fingerprint = data_fingerprint(self.dataset_cfg, draws, seed)
        self.teacher_fingerprint = None
        self.cache_dir = cache_dir
        self._lookup: Dict[tuple, tuple] = {}
        self._shards: List[dict] = []
        if cache_dir is not None:
            self._load(cache_dir)

    @property
    def metainfo(self):
        return self.dataset.metainfo

    def _load(self, cache_dir: str) -> None:
        manifest_file = osp.join(cache_dir, 'manifest.json')
        if not osp.isfile(manifest_file):
            raise FileNotFoundError(f'cache_dir={cache_dir!r} has no manifest.json; build it with '
                                    '`python tools/cache_teacher.py CONFIG --out DIR`')
        with open(manifest_file) as f:
            manifest = json.load(f)
        if manifest['data_fingerprint'] != self.fingerprint:
            raise ValueError(
                f'cache_dir={cache_dir!r} was built for another data set, pipeline, number of '
                f"draws or seed (data fingerprint {manifest['data_fingerprint'][:12]} != "
                f'{self.fingerprint[:12]}). Rebuild it with tools/cache_teacher.py.')
        self.teacher_fingerprint = manifest['teacher_fingerprint']
        if len(self.dataset) != manifest['num_samples']:
            raise ValueError(f'cache_dir={cache_dir!r} holds {manifest["num_samples"]} samples '
                             f'but the data set has {len(self.dataset)}')
        self.topk = manifest.get('topk')
        self.num_classes = manifest.get('num_classes', {})
        for shard_id, name in enumerate(manifest['shards']):
            path = osp.join(cache_dir, name)
            try:
                shard = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
            except Exception as err:
                raise ValueError(f'corrupt teacher cache file {path!r} ({type(err).__name__}: '
                                 f'{str(err)[:200]}); rebuild the cache with '
                                 'tools/cache_teacher.py') from None
            self._shards.append(shard)
            for pos, (idx, draw) in enumerate(zip(shard['index'].tolist(), shard['draw'].tolist())):
                self._lookup[(idx, draw)] = (shard_id, pos)

    def __len__(self) -> int:
        return len(self.dataset)

    def cached_for(self, index: int, draw: int) -> Dict[str, torch.Tensor]:
        shard_id, pos = self._lookup[(index, draw)]
        shard = self._shards[shard_id]
        out = {}
        for key, values in shard['values'].items():
            value = values[pos]
            if key in shard.get('indices', {}):
                value = expand_topk(value, shard['indices'][key][pos], self.num_classes[key])
            out[key] = value.float()
        return out

    def __getitem__(self, index: int):
        draw = int(np.random.randint(self.draws)) if self.draws > 1 else 0
        with replay_rng(self.seed, index, draw):
            item = self.dataset[index]
        if self.cache_dir is not None:
            item['data_samples'].set_metainfo(dict(
                teacher_outputs=self.cached_for(index, draw),
                teacher_fingerprint=self.teacher_fingerprint))
        return item
