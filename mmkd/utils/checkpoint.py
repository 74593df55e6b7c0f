"""Safe checkpoint loading for teachers, resume and `load_from`."""
from __future__ import annotations

import os
import os.path as osp
from typing import Dict, Optional

import torch
from torch import nn


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint holds pickled objects outside the allow-list."""


def safe_torch_load(path: str, map_location: str = 'cpu', trusted: bool = False) -> dict:
    """``torch.load(weights_only=True)`` with mmengine's types allow-listed.

    A checkpoint whose pickle references anything else (a function that would run
    on load, an arbitrary class) is refused with :class:`UnsafeCheckpointError`,
    before any of it runs. ``trusted=True`` is the explicit opt-in to a full pickle
    load for a file you trust.
    """
    if trusted:
        return torch.load(path, map_location=map_location, weights_only=False)
    from .compat import allow_mmengine_checkpoint_globals
    allow_mmengine_checkpoint_globals()
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises UnpicklingError with the offending global
        if 'weights_only' in str(err) or 'Unsupported global' in str(err) or 'Unpickl' in type(err).__name__:
            raise UnsafeCheckpointError(
                f'refusing to load {path!r}: it holds pickled objects outside the allow-list '
                f'of data types ({str(err).splitlines()[0][:300]}). If you trust the file, '
                're-save its state_dict with plain tensors.') from None
        raise


def load_state_dict_file(path: str, key: str = 'teacher_ckpt',
                         trusted: bool = False) -> Dict[str, torch.Tensor]:
    """Load a checkpoint (local path or URL, cached by torch hub) safely; return its state dict."""
    if path.startswith(('http://', 'https://')):
        from torch.hub import download_url_to_file, get_dir
        cache_dir = osp.join(get_dir(), 'checkpoints')
        os.makedirs(cache_dir, exist_ok=True)
        local = osp.join(cache_dir, osp.basename(path.split('?')[0]))
        if not osp.isfile(local):
            tmp = local + '.part'
            download_url_to_file(path, tmp, progress=True)
            os.replace(tmp, local)  # never leave a half file under the final name
        path = local
    if not osp.isfile(path):
        raise FileNotFoundError(f'{key}={path!r} does not exist')
    ckpt = safe_torch_load(path, trusted=trusted)
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
    if not isinstance(state, dict):
        raise TypeError(f'{key}={path!r} holds no state dict')
    return state


def load_teacher_weights(teacher: nn.Module, path: str, key: str = 'teacher_ckpt',
                         strict: bool = True, prefix: Optional[str] = None,
                         trusted: bool = False) -> None:
    """Load ``path`` into ``teacher``. Accepts plain task checkpoints and mmkd ones.

    An mmkd distillation checkpoint stores the student under ``architecture.``; when
    a teacher is itself a previously distilled student, that prefix is stripped.
    """
    state = load_state_dict_file(path, key, trusted=trusted)
    if prefix is None and any(k.startswith('architecture.') for k in state):
        prefix = 'architecture.'
    if prefix:
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
    missing, unexpected = teacher.load_state_dict(state, strict=False)
    if missing or unexpected:
        msg = (f'{key}={path!r} does not match the teacher: {len(missing)} missing keys '
               f'{missing[:10]}{"..." if len(missing) > 10 else ""}, {len(unexpected)} unexpected '
               f'keys {unexpected[:10]}{"..." if len(unexpected) > 10 else ""}')
        if strict:
            raise RuntimeError(msg + '. Set teacher_ckpt_strict=False to load it anyway.')
        from mmengine.logging import print_log
        print_log(msg + ' (loaded anyway: teacher_ckpt_strict=False)', logger='current',
                  level=30)
