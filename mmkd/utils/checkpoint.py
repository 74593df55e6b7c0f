"""Safe checkpoint loading for teachers, resume, ``load_from`` and URLs.

Every checkpoint mmkd or mmengine loads goes through ``torch.load(weights_only=True)``
with an allow-list of the data types mmengine writes (:func:`allow_mmengine_checkpoint_globals`).
http(s) checkpoints are downloaded into torch.hub's cache and loaded the same way:
``import mmkd`` registers :func:`load_from_http_safe` as mmengine's ``http://`` /
``https://`` checkpoint scheme in place of mmengine's ``load_from_http``, which
unpickles with ``weights_only=False``.
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Dict, List, Optional
from urllib.parse import urlparse

import torch
from torch import nn

from .import_hooks import after_import

URL_PREFIXES = ('http://', 'https://')

# torch's own switch for trusting full pickles in loads that do not pass `weights_only`
# (mmengine's local `load_from`/`--resume` loads); the http(s) scheme honours it too.
TRUST_ENV = 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint holds pickled objects outside the allow-list."""


class CheckpointNotFoundError(FileNotFoundError):
    """A checkpoint named by a config key or argument does not exist."""


class CheckpointFileError(ValueError):
    """A file given as a checkpoint cannot be one: empty, truncated, text, no state dict.

    The message names the config key or argument the file came from and the file.
    """


def named(key: Optional[str], path: str, origin: Optional[str] = None) -> str:
    """``teacher_ckpt='x.pth'`` / ``--resume='x.pth'``: how errors name a file and its key.

    ``origin``: the URL ``path`` was downloaded from, named first.
    """
    if origin:
        return f'{key}={origin!r} (downloaded to {path!r})' if key else (
            f'{origin!r} (downloaded to {path!r})')
    return f'{key}={path!r}' if key else repr(path)


_ZIP_MAGIC = b'PK\x03\x04'
_PICKLE_PROTO = 0x80  # first byte of a pickle (protocol >= 2): torch's legacy format


def check_checkpoint_file(path: str, key: Optional[str] = None,
                          origin: Optional[str] = None) -> None:
    """Fail early, naming ``key`` and ``path``, on a file that cannot be a checkpoint.

    Checks what torch would otherwise report obscurely: a missing file or a folder,
    an empty file (``EOFError``), a truncated zip ("failed finding central
    directory"), and a file in no torch format at all, e.g. text or json
    (``KeyError: 101`` or an unpickling error).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointFileError: anything else above.
    """
    import zipfile
    shown = named(key, path, origin)
    if not osp.exists(path):
        raise CheckpointNotFoundError(f'{shown} does not exist')
    if osp.isdir(path):
        raise CheckpointFileError(f'{shown} is a directory, not a checkpoint file; pass the '
                                  '.pth file itself (e.g. work_dirs/NAME/iter_N.pth)')
    size = osp.getsize(path)
    if size == 0:
        raise CheckpointFileError(
            f'{shown} is empty (0 bytes), not a checkpoint: an interrupted copy, download or '
            'save? Pass a complete .pth file (e.g. the one named in work_dirs/NAME/last_checkpoint).')
    with open(path, 'rb') as f:
        head = f.read(64)
    if head.startswith(_ZIP_MAGIC):
        if not zipfile.is_zipfile(path):
            raise CheckpointFileError(
                f'{shown} is truncated or corrupt ({size} bytes; torch\'s zip archive has no '
                'end record): an interrupted copy, download or save? Pass a complete checkpoint.')
        return
    if head[0] == _PICKLE_PROTO:
        return
    text = head.decode('utf-8', errors='replace')
    looks = ('text' if all(c.isprintable() or c.isspace() for c in text) else 'binary data')
    raise CheckpointFileError(
        f'{shown} is not a PyTorch checkpoint: it is {looks} in neither torch.save format '
        f'(zip archive or pickle; it starts with {head[:16]!r}). Pass a .pth file written by '
        'torch.save / an mmengine run (e.g. work_dirs/NAME/iter_N.pth).')


SAFETENSORS_SUFFIX = '.safetensors'


def is_safetensors_file(path: str) -> bool:
    """Whether ``path`` is (or is named as) a safetensors file.

    A safetensors file starts with the length of its json header (8 bytes,
    little-endian) followed by the header's ``{``; a file named ``*.safetensors`` counts
    too, so that an empty or broken one is reported as a broken safetensors file.
    """
    if not isinstance(path, (str, os.PathLike)):
        return False
    path = os.fspath(path)
    if path.endswith(SAFETENSORS_SUFFIX):
        return True
    if not osp.isfile(path):
        return False
    try:
        size = osp.getsize(path)
        with open(path, 'rb') as f:
            head = f.read(9)
    except OSError:
        return False
    if len(head) < 9 or head[8:9] != b'{':
        return False
    return 2 <= int.from_bytes(head[:8], 'little') <= size - 8


def load_safetensors_file(path: str, key: Optional[str] = None, origin: Optional[str] = None,
                          map_location=None) -> Dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file (``safetensors.torch.load_file``).

    safetensors holds tensors and a json header only, no pickle, so no allow-list is
    needed. Tensors are read on the CPU and moved to ``map_location`` when it names
    a device.

    Raises:
        CheckpointNotFoundError: ``path`` does not exist.
        ImportError: the ``safetensors`` package is not installed (named with the fix).
        CheckpointFileError: a folder, an empty, truncated or corrupt file.
    """
    shown = named(key, path, origin)
    if not osp.exists(path):
        raise CheckpointNotFoundError(f'{shown} does not exist')
    if osp.isdir(path):
        raise CheckpointFileError(f'{shown} is a directory, not a checkpoint file; pass the '
                                  '.safetensors file itself')
    if osp.getsize(path) == 0:
        raise CheckpointFileError(f'{shown} is empty (0 bytes), not a safetensors file: an '
                                  'interrupted copy, download or save?')
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise ImportError(
            f'{shown} is a .safetensors file and reading it needs the safetensors package: '
            '`pip install safetensors` (transformers installs it), or convert it once where it '
            'is installed: torch.save(safetensors.torch.load_file(FILE), FILE_PTH)') from None
    try:
        state = load_file(path, device='cpu')
    except Exception as err:  # safetensors raises its own SafetensorError, OSError, ...
        text = str(err).strip().splitlines()
        raise CheckpointFileError(
            f'{shown} is not a readable safetensors file: it is truncated or corrupt '
            f'({type(err).__name__}: {(text[0] if text else "")[:300]}). Pass a complete '
            '.safetensors file (written by safetensors.torch.save_file / save_pretrained).'
        ) from None
    if isinstance(map_location, (str, torch.device)) and str(map_location) != 'cpu':
        state = {k: v.to(map_location) for k, v in state.items()}
    return state


def _opt_in_hint() -> str:
    return ('If you trust the file, opt in explicitly: `teacher_ckpt_trusted=True` in the model '
            f'config for a `teacher_ckpt`, the environment variable {TRUST_ENV}=1 for `load_from`, '
            "`--resume` and `init_cfg=dict(type='Pretrained', ...)`, or "
            '`mmkd.utils.safe_torch_load(path, trusted=True)` in Python; better, re-save its '
            'state_dict with plain tensors.')


def safe_torch_load(path: str, map_location: Optional[str] = 'cpu', trusted: bool = False,
                    origin: Optional[str] = None, key: Optional[str] = None) -> dict:
    """``torch.load(weights_only=True)`` with mmengine's types allow-listed.

    A ``.safetensors`` file (by name or by content) is read with
    :func:`load_safetensors_file` instead (a dict of tensors).

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
        key (str, optional): the config key or argument ``path`` came from
            (``teacher_ckpt``, ``load_from``, ``--resume``, ...), named in errors.

    Returns:
        dict: the loaded checkpoint.

    Raises:
        UnsafeCheckpointError: the file holds objects outside the allow-list; the
            message names the file (and URL) and the opt-ins for a trusted file.
        CheckpointFileError: the file is empty, truncated, corrupt or no torch file
            (see :func:`check_checkpoint_file`); the message names ``key`` and the file.
    """
    shown = named(key, path, origin)
    if is_safetensors_file(path):  # no pickle at all: nothing to allow-list
        return load_safetensors_file(path, key, origin, map_location)
    check_checkpoint_file(path, key, origin)
    if trusted:
        return _load_or_explain(path, map_location, False, shown)
    allow_mmengine_checkpoint_globals()
    return _load_or_explain(path, map_location, True, shown)


def _is_unsafe_refusal(err: BaseException) -> bool:
    """Whether torch's weights_only unpickler refused the file's pickle.

    It refuses a global outside the allow-list ("unsupported GLOBAL posix.system",
    "Unsupported global: GLOBAL ...") or an opcode it does not run ("Unsupported
    operand 180", a crafted pickle or a corrupted one); mmkd's restricted ``getattr``
    refuses everything but HistoryBuffer's statistics. Nothing of the file ran.
    """
    text = str(err)
    return ('GLOBAL' in text or 'Unsupported global' in text or 'Unsupported operand' in text
            or 'which mmkd does not allow' in text)


def _load_or_explain(path: str, map_location, weights_only: bool, shown: str):
    try:
        return torch.load(path, map_location=map_location, weights_only=weights_only)
    except Exception as err:
        lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
        lines = lines or [type(err).__name__]
        if weights_only and _is_unsafe_refusal(err):
            detail = next((line for line in lines if 'GLOBAL' in line or 'Unsupported' in line
                           or 'mmkd' in line), lines[-1])
            maybe = (' (or a corrupted pickle)' if 'operand' in detail else '')
            raise UnsafeCheckpointError(
                f'refusing to load {shown}: it holds pickled objects outside the allow-list '
                f'of data types{maybe} ({detail[:300]}); nothing in it was run. '
                + _opt_in_hint()) from None
        if isinstance(err, (EOFError, RuntimeError, KeyError, ValueError, IndexError,
                            AttributeError, TypeError)) or 'Unpickl' in type(err).__name__:
            raise CheckpointFileError(
                f'{shown} is truncated or corrupt: torch cannot read it ({type(err).__name__}: '
                f'{lines[0][:300]}). Pass a complete checkpoint written by torch.save / an '
                'mmengine run.') from None
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


def state_dict_of(ckpt: object, shown: str) -> Dict[str, torch.Tensor]:
    """The state dict of a loaded checkpoint: its ``state_dict`` entry, or itself.

    Raises:
        CheckpointFileError: it holds no dict of tensors (e.g. a bare tensor, a list, a
            dict of numbers); the message names ``shown`` (key and file) and what it holds.
    """
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
    if isinstance(state, dict) and state and any(torch.is_tensor(v) for v in state.values()):
        return state
    if isinstance(ckpt, dict):
        what = f'a dict with keys {sorted(map(str, ckpt))[:10]}'
        if 'state_dict' in ckpt:
            inner = ckpt['state_dict']
            size = len(inner) if hasattr(inner, '__len__') else '?'
            what += f' whose state_dict is a {type(inner).__name__} with {size} entries'
        what += ' and no tensors'
    else:
        what = f'a {type(ckpt).__name__}'
    raise CheckpointFileError(f'{shown} holds no model weights: it is {what}, not a checkpoint '
                              "(a dict of tensors, or a dict with a 'state_dict' of tensors)")


def load_state_dict_file(path: str, key: str = 'teacher_ckpt',
                         trusted: bool = False) -> Dict[str, torch.Tensor]:
    """Load a checkpoint (local path or URL, cached by torch hub) safely; return its state dict.

    torch files (zip or legacy pickle, through the allow-list) and ``.safetensors``
    files (timm's and the Hugging Face hub's format) are both read.

    Args:
        path (str): local path or http(s) URL (see :func:`resolve_checkpoint_file`).
        key (str): the config key ``path`` came from, named in errors.
        trusted (bool): full pickle load (see :func:`safe_torch_load`).

    Returns:
        dict: the ``state_dict`` entry of the checkpoint, or the checkpoint itself.

    Raises:
        FileNotFoundError, CheckpointFileError, UnsafeCheckpointError: named after
            ``key`` and the file.
    """
    local = resolve_checkpoint_file(path)
    origin = path if is_url(path) else None
    ckpt = safe_torch_load(local, trusted=trusted, origin=origin, key=key)
    return state_dict_of(ckpt, named(key, local, origin))


def _shape_mismatches(model: nn.Module, state: Dict[str, torch.Tensor]) -> List[str]:
    own = model.state_dict()
    return [f'{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}'
            for k, v in state.items()
            if k in own and torch.is_tensor(v) and tuple(v.shape) != tuple(own[k].shape)]


def _sha256_prefix(path: str, length: int = 12) -> str:
    """The first hex digits of the file's sha256 (read in 8 MiB blocks), or 'n/a'."""
    import hashlib
    try:
        digest = hashlib.sha256()
        with open(path, 'rb') as f:
            for block in iter(lambda: f.read(1 << 23), b''):
                digest.update(block)
        return digest.hexdigest()[:length]
    except OSError:
        return 'n/a'  # a URL already fetched by mmengine's loader, or a vanished file


def load_teacher_weights(teacher: nn.Module, path: str, key: str = 'teacher_ckpt',
                         strict: bool = True, prefix: Optional[str] = None,
                         trusted: bool = False) -> None:
    """Load ``path`` into ``teacher``. Accepts plain task checkpoints and mmkd ones.

    An mmkd distillation checkpoint stores the student under ``architecture.``; when
    a teacher is itself a previously distilled student, that prefix is stripped.

    Raises:
        RuntimeError: the file does not fit the teacher: tensors of other shapes (a
            checkpoint of another model), missing or unexpected keys (unless
            ``strict=False``), or no tensor at all that fits; the message names ``key``,
            the file, the counts and the first offending keys.
    """
    state = load_state_dict_file(path, key, trusted=trusted)
    if prefix is None and any(k.startswith('architecture.') for k in state):
        prefix = 'architecture.'
    if prefix:
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
    remap = getattr(teacher, 'remap_state_dict', None)  # LlavaModel: the other transformers layout
    if callable(remap):
        state = remap(state)
    own = teacher.state_dict()
    shapes = _shape_mismatches(teacher, state)
    matched = [k for k in state if k in own] if not shapes else []
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]

    def listed(keys):
        return f'{len(keys)} {keys[:10]}{"..." if len(keys) > 10 else ""}'

    where = f'{key}={path!r} does not match the teacher ({type(teacher).__name__}, {len(own)} tensors)'
    if shapes:
        raise RuntimeError(
            f'{where}: {len(shapes)} tensors have other shapes, e.g. {shapes[:5]}. It is a '
            'checkpoint of another model (another depth, width or number of classes): pass '
            "the teacher's own checkpoint, or change `teacher` to the model it was trained "
            f'with. (Also {len(missing)} missing and {len(unexpected)} unexpected keys.)')
    if not matched:
        raise RuntimeError(
            f'{where}: none of its {len(state)} tensors has a name of the teacher (e.g. file '
            f'{sorted(state)[:5]} vs teacher {list(own)[:5]}). It is a checkpoint of another '
            'model or has other key prefixes; even with teacher_ckpt_strict=False a teacher '
            'with random weights is not loaded.')
    teacher.load_state_dict(state, strict=False)
    if missing or unexpected:
        msg = f'{where}: {len(missing)} missing keys {listed(missing).split(" ", 1)[1]}, ' \
              f'{len(unexpected)} unexpected keys {listed(unexpected).split(" ", 1)[1]}'
        if strict:
            raise RuntimeError(msg + '. Set teacher_ckpt_strict=False to load it anyway.')
        from mmengine.logging import print_log
        print_log(msg + ' (loaded anyway: teacher_ckpt_strict=False)', logger='current',
                  level=30)
    from mmengine.logging import print_log
    print_log(f'{key}: loaded {path!r} (sha256 {_sha256_prefix(path)}) into the teacher '
              f'{type(teacher).__name__}: {len(own) - len(missing)} of {len(own)} tensors matched',
              logger='current', level=20)


# ------------------------------------------------- mmengine's own checkpoints, made safe
_MMENGINE_CHECKPOINT = 'mmengine.runner.checkpoint'


def mmengine_checkpoint_globals() -> list:
    """Return the non-tensor types that mmengine 0.10.7 writes into its checkpoints.

    mmengine's ``Runner.save_checkpoint`` stores ``message_hub`` state holding
    ``HistoryBuffer`` objects, numpy scalars/arrays (log values, random states) and
    ``collections.OrderedDict``/``defaultdict``. torch>=2.6 loads with
    ``weights_only=True`` by default and refuses them ("Unsupported global: GLOBAL
    mmengine.logging.history_buffer.HistoryBuffer"). Only these data-only types are
    allowed; arbitrary pickled callables are still refused.
    """
    import collections

    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    allowed = [HistoryBuffer, collections.OrderedDict, collections.defaultdict]
    # numpy scalars and arrays are reconstructed through these functions/types.
    try:
        from numpy.core.multiarray import _reconstruct, scalar  # numpy<2 path
    except ImportError:  # pragma: no cover - numpy>=2 moved the module
        from numpy._core.multiarray import _reconstruct, scalar
    allowed += [_reconstruct, scalar, np.ndarray, np.dtype]
    # numpy>=1.25 pickles dtypes through their concrete classes (np.dtypes.Float64DType).
    dtypes_mod = getattr(np, 'dtypes', None)
    if dtypes_mod is not None:
        for name in dir(dtypes_mod):
            obj = getattr(dtypes_mod, name)
            if isinstance(obj, type) and name.endswith('DType'):
                allowed.append(obj)
    return allowed


def _history_buffer_getattr(obj, name):
    """A ``getattr`` that only resolves HistoryBuffer's statistics methods.

    mmengine's ``HistoryBuffer`` instances carry a ``statistics_methods`` dict of
    bound class functions, which pickle as ``getattr(HistoryBuffer, 'mean')`` etc.
    Allow-listing the real ``builtins.getattr`` would let a crafted pickle reach any
    attribute of any allowed object; this stand-in resolves exactly those names.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    if obj is HistoryBuffer and name in ('min', 'max', 'mean', 'current') or (
            obj is HistoryBuffer and name in getattr(HistoryBuffer, '_statistics_methods', {})):
        return getattr(obj, name)
    raise RuntimeError(f'checkpoint asked for getattr({obj!r}, {name!r}), which mmkd does '
                       'not allow while loading with weights_only=True')


def allow_mmengine_checkpoint_globals() -> None:
    """Make mmengine's checkpoint loading safe; ``import mmkd`` calls this.

    Allow-lists mmengine's checkpoint types for ``torch.load(weights_only=True)``
    and routes mmengine's http(s) checkpoints through mmkd's safe loader
    (:func:`install_safe_url_checkpoint_loader`).
    """
    install_safe_url_checkpoint_loader()
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:  # torch<2.4: weights_only loading is opt-in and has no allow-list
        return
    add(mmengine_checkpoint_globals() + [(_history_buffer_getattr, 'builtins.getattr'),
                                         (_history_buffer_getattr, '__builtin__.getattr')])


def _use_safe_http_loader(module) -> None:
    """Point mmengine's http(s) scheme and its module-level ``load_from_http`` at mmkd's."""
    loader = module.CheckpointLoader
    if any(loader._schemes.get(p) is not load_from_http_safe for p in URL_PREFIXES):
        loader.register_scheme(prefixes=URL_PREFIXES, loader=load_from_http_safe, force=True)
    # open-mmlab://, mmcls:// and torchvision:// call the module-level name directly.
    module.load_from_http = load_from_http_safe


def install_safe_url_checkpoint_loader() -> None:
    """Load mmengine's ``http://`` / ``https://`` checkpoints with mmkd's safe loader.

    mmengine 0.10.7 registers ``load_from_http`` for these prefixes; it loads through
    ``torch.hub.load_state_dict_from_url(..., weights_only=False)``, so a malicious
    pickle at a ``load_from``/``--resume``/``Pretrained``/``open-mmlab://`` URL would
    run code. This registers :func:`mmkd.utils.checkpoint.load_from_http_safe` with
    ``CheckpointLoader.register_scheme(..., force=True)`` instead, now if mmengine's
    checkpoint module is already imported and otherwise right after it is. Safe to
    call repeatedly.
    """
    after_import(_MMENGINE_CHECKPOINT, _use_safe_http_loader, ready='CheckpointLoader')
