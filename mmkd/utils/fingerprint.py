"""Fingerprints of a teacher and of a data set, which guard a cache of teacher outputs."""
from __future__ import annotations

import hashlib
import json
from typing import Optional, Sequence

CACHE_VERSION = 1


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return repr(obj)


def file_sha256(path: str, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def teacher_fingerprint(teacher, teacher_ckpt: Optional[str], sources: Sequence[str]) -> str:
    """Hash of the teacher's model config, its checkpoint bytes and the cached sources.

    An http(s) ``teacher_ckpt`` is hashed through its downloaded file in torch.hub's
    cache (downloaded now if missing): the same file the teacher is loaded from.
    """
    from mmkd.utils.checkpoint import resolve_checkpoint_file
    ckpt_hash = file_sha256(resolve_checkpoint_file(teacher_ckpt)) if teacher_ckpt else None
    payload = dict(version=CACHE_VERSION, teacher=_jsonable(teacher), teacher_ckpt=ckpt_hash,
                   sources=list(sources))
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def data_fingerprint(dataset, draws: int, seed: int) -> str:
    """Hash of the data set config (pipeline included), augmentation draws and seed."""
    payload = dict(version=CACHE_VERSION, dataset=_jsonable(dataset), draws=draws, seed=seed)
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
