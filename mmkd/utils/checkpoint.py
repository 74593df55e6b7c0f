"""Safe checkpoint loading for teachers, resume, ``load_from`` and URLs.

Every checkpoint mmkd or mmengine loads goes through ``torch.load(weights_only=True)``
with an allow-list of the data types mmengine writes (:mod:`mmkd.utils.compat`).
http(s) checkpoints are downloaded into torch.hub's cache and loaded the same way:
``import mmkd`` registers :func:`load_from_http_safe` as mmengine's ``http://`` /
``https://`` checkpoint scheme in place of mmengine's ``load_from_http``, which
unpickles with ``weights_only=False``.
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Dict, Optional
from urllib.parse import urlparse

import torch
from torch import nn

URL_PREFIXES = ('http://', 'https://')

# torch's own switch for trusting full pickles in loads that do not pass `weights_only`
# (mmengine's local `load_from`/`--resume` loads); the http(s) scheme honours it too.
TRUST_ENV = 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint holds pickled objects outside the allow-list."""


def _opt_in_hint() -> str:
    return ('If you trust the file, opt in explicitly: `teacher_ckpt_trusted=True` in the model '
            f'config for a `teacher_ckpt`, the environment variable {TRUST_ENV}=1 for `load_from`, '
            "`--resume` and `init_cfg=dict(type='Pretrained', ...)`, or "
            '`mmkd.utils.safe_torch_load(path, trusted=True)` in Python; better, re-save its '
            'state_dict with plain tensors.')


def safe_torch_load(path: str, map_location: Optional[str] = 'cpu', trusted: bool = False,
                    origin: Optional[str] = None) -> dict:
    """``torch.load(weights_only=True)`` with mmengine's types allow-listed.

    A checkpoint whose pickle references anything else (a function that would run
    on load, an arbitrary class) is refused with :class:`UnsafeCheckpointError`,
    before any of it runs.

    Args:
        path (str): local checkpoint file.
        map_location (str, optional): as in :func:`torch.load`.
        trusted (bool): the explicit opt-in to a full pickle load
            (``weights_only=False``) for a file you trust.
        origin (str, optional): where ``path`` came from (the URL it was downloaded
            from); named in the error together with ``path``.

    Returns:
        dict: the loaded checkpoint.

    Raises:
        UnsafeCheckpointError: the file holds objects outside the allow-list; the
            message names the file (and URL) and the opt-ins for a trusted file.
    """
    if trusted:
        return torch.load(path, map_location=map_location, weights_only=False)
    from .compat import allow_mmengine_checkpoint_globals
    allow_mmengine_checkpoint_globals()
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises UnpicklingError with the offending global
        if 'weights_only' in str(err) or 'Unsupported global' in str(err) or 'Unpickl' in type(err).__name__:
            shown = f'{origin!r} (downloaded to {path!r})' if origin else repr(path)
            raise UnsafeCheckpointError(
                f'refusing to load {shown}: it holds pickled objects outside the allow-list '
                f'of data types ({str(err).splitlines()[0][:300]}); nothing in it was run. '
                + _opt_in_hint()) from None
        raise


def is_url(path: object) -> bool:
    """Whether ``path`` is an http(s) URL (which mmkd downloads before loading)."""
    return isinstance(path, str) and path.startswith(URL_PREFIXES)


def resolve_checkpoint_file(path_or_url: str, model_dir: Optional[str] = None,
                            progress: bool = True) -> str:
    """Return the local file of a checkpoint, downloading an http(s) URL if needed.

    A URL is downloaded the way torch.hub caches checkpoints: into ``model_dir``
    (default ``<torch.hub.get_dir()>/checkpoints``) under the base name of the URL's
    path (query string dropped), with :func:`torch.hub.download_url_to_file`, and
    not again while that file exists. The download goes to a per-process temporary
    name first, so an interrupted or concurrent download never leaves a partial file
    under the final name. Anything else is returned unchanged.

    Args:
        path_or_url (str): a local path or an ``http://`` / ``https://`` URL.
        model_dir (str, optional): cache directory for downloads.
        progress (bool): show a download progress bar.

    Returns:
        str: ``path_or_url`` itself, or the cached file of the URL.

    Raises:
        ValueError: the URL's path has no file name to cache it under.
    """
    if not is_url(path_or_url):
        return path_or_url
    name = osp.basename(urlparse(path_or_url).path)
    if not name:
        raise ValueError(f'cannot cache checkpoint URL {path_or_url!r}: its path has no file '
                         "name (expected e.g. 'https://host/dir/model.pth')")
    cache_dir = model_dir or osp.join(torch.hub.get_dir(), 'checkpoints')
    os.makedirs(cache_dir, exist_ok=True)
    local = osp.join(cache_dir, name)
    if not osp.isfile(local):
        tmp = f'{local}.{os.getpid()}.part'
        try:
            # looked up at call time so that tests (and users) can swap the downloader
            torch.hub.download_url_to_file(path_or_url, tmp, progress=progress)
            os.replace(tmp, local)
        finally:
            if osp.exists(tmp):
                os.remove(tmp)
    return local


def _env_trusts_pickles() -> bool:
    return os.getenv(TRUST_ENV, '0').lower() in ('1', 'y', 'yes', 'true')


def load_from_http_safe(filename: str, map_location: Optional[str] = None,
                        model_dir: Optional[str] = None, progress: bool = os.isatty(0)) -> dict:
    """mmengine ``CheckpointLoader`` scheme for ``http://`` / ``https://`` checkpoints.

    Replaces mmengine 0.10.7's ``load_from_http``, which loads through
    ``torch.hub.load_state_dict_from_url(weights_only=False)`` so that a malicious
    pickle at a URL runs code. This one downloads with :func:`resolve_checkpoint_file`
    (rank 0 first, the other ranks after a barrier, as mmengine does) and loads with
    :func:`safe_torch_load`. It serves ``load_from``, ``--resume``,
    ``init_cfg=dict(type='Pretrained')`` and, through mmengine's module-level
    ``load_from_http``, the ``open-mmlab://``, ``mmcls://`` and ``torchvision://``
    schemes. Setting the environment variable ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``
    (torch's switch, which also makes mmengine's local loads unpickle fully) is the
    opt-in to a full pickle load of a trusted file.

    Args:
        filename (str): the checkpoint URL.
        map_location (str, optional): as in :func:`torch.load`.
        model_dir (str, optional): download directory (default torch.hub's cache).
        progress (bool): show a download progress bar.

    Returns:
        dict: the loaded checkpoint.
    """
    from mmengine.dist import get_dist_info
    rank, world_size = get_dist_info()
    if rank == 0:
        local = resolve_checkpoint_file(filename, model_dir=model_dir, progress=progress)
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:  # finds rank 0's file on a shared file system, downloads otherwise
            local = resolve_checkpoint_file(filename, model_dir=model_dir, progress=progress)
    trusted = _env_trusts_pickles()
    if trusted:
        from mmengine.logging import print_log
        print_log(f'loading {filename!r} with a full pickle load ({TRUST_ENV} is set): only do '
                  'this for files you trust', logger='current', level=30)
    return safe_torch_load(local, map_location=map_location, trusted=trusted, origin=filename)


def load_state_dict_file(path: str, key: str = 'teacher_ckpt',
                         trusted: bool = False) -> Dict[str, torch.Tensor]:
    """Load a checkpoint (local path or URL, cached by torch hub) safely; return its state dict.

    Args:
        path (str): local path or http(s) URL (see :func:`resolve_checkpoint_file`).
        key (str): the config key ``path`` came from, named in errors.
        trusted (bool): full pickle load (see :func:`safe_torch_load`).

    Returns:
        dict: the ``state_dict`` entry of the checkpoint, or the checkpoint itself.
    """
    local = resolve_checkpoint_file(path)
    if not osp.isfile(local):
        raise FileNotFoundError(f'{key}={local!r} does not exist')
    ckpt = safe_torch_load(local, trusted=trusted, origin=path if is_url(path) else None)
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
