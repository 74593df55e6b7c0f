"""Checkpoints in and out of mmengine's Runner, for ``tools/train.py`` and ``tools/test.py``.

mmengine 0.10.7 loads ``load_from`` and ``--resume`` non-strictly and says nothing
when no key matches: a plain student given to a distillation config, or a
distillation checkpoint given to a plain config, trains or evaluates random weights
and exits 0. Its local loader calls ``torch.load`` directly, so a bad file ends in
torch's own text (``central directory``, ``EOFError``, a hint to pass
``weights_only=False``). Here every checkpoint is read once, safely, before the run
(:func:`prepare_checkpoint`), checked against the model (``mmkd.utils.checkpoint_kinds``),
mapped onto it, and handed to mmengine while the run lasts (:func:`serve_checkpoints`);
any other local checkpoint mmengine reads meanwhile (``init_cfg=dict(type='Pretrained')``)
goes through :func:`mmkd.utils.safe_torch_load` too.
"""
from __future__ import annotations

import contextlib
import os.path as osp
from typing import Dict, Iterator, Optional, Tuple

from mmkd.utils.checkpoint import is_url, safe_torch_load
from mmkd.utils.checkpoint_kinds import (
    CheckpointInfo,
    CheckpointMismatchError,
    abs_path,
    check_resumable,
    fit_checkpoint,
    optimizer_group_sizes,
    read_checkpoint,
    trusted_by_env,
)

from .atomic_backend import remove_stale_parts

#: ``--resume`` with no path: resume the work dir's latest checkpoint, which must exist.
RESUME_LATEST = '<latest>'
#: ``--resume auto``: resume the latest checkpoint if there is one, else start from scratch.
RESUME_AUTO = 'auto'


class NoCheckpointToResume(FileNotFoundError):
    """``--resume`` was given and the work dir has no checkpoint to resume."""


def _groups(sizes: object) -> str:
    """Parameter counts per optimizer group, short: ``[62]``, ``62 groups of 1``."""
    if isinstance(sizes, dict):
        return '{' + ', '.join(f'{k!r}: {_groups(v)}' for k, v in sizes.items()) + '}'
    if isinstance(sizes, list) and len(sizes) > 6:
        kinds = sorted(set(sizes))
        each = f' of {kinds[0]} each' if len(kinds) == 1 else ''
        return f'{len(sizes)} groups{each} ({sum(sizes)} parameters)'
    return str(sizes)


def resolve_resume(resume: Optional[str], work_dir: str) -> Tuple[Optional[str], Optional[str]]:
    """The checkpoint a ``--resume`` value means, and a line to log about it.

    Args:
        resume (str, optional): None (no ``--resume``), :data:`RESUME_LATEST` (bare
            ``--resume``), :data:`RESUME_AUTO` (``--resume auto``) or a path / URL.
        work_dir (str): the run's work dir, holding ``last_checkpoint``.

    Returns:
        tuple: ``(checkpoint or None, message or None)``; ``None`` with a message for
        ``--resume auto`` in a work dir without checkpoint (start from scratch).

    Raises:
        NoCheckpointToResume: bare ``--resume`` and no ``last_checkpoint`` in
            ``work_dir``.
        FileNotFoundError: ``last_checkpoint`` names a file that is gone, or an
            explicit path does not exist.
        CheckpointMismatchError: an explicit path is a directory.
    """
    if resume is None:
        return None, None
    if resume in (RESUME_LATEST, RESUME_AUTO):
        flag = '--resume' if resume == RESUME_LATEST else '--resume auto'
        last = osp.join(work_dir, 'last_checkpoint')
        if osp.isfile(last):
            with open(last) as f:
                path = f.read().strip()
            if not path:
                raise NoCheckpointToResume(
                    f'{flag}: {last!r} is empty, so there is no checkpoint to resume; pass '
                    '--resume FILE, or remove that file to start from scratch')
            if not is_url(path) and not osp.isfile(path):
                raise NoCheckpointToResume(
                    f'{flag}: {last!r} names {path!r}, which does not exist (moved or deleted?); '
                    f'pass --resume FILE with one of the checkpoints in {work_dir!r}, or remove '
                    f'{last!r} to start from scratch')
            return path, f'{flag}: resuming from {path} (named in {last})'
        if resume == RESUME_AUTO:
            return None, (f'--resume auto: no checkpoint in {work_dir} (no last_checkpoint), '
                          'starting from scratch')
        raise NoCheckpointToResume(
            f'--resume: there is no checkpoint to resume in the work dir {work_dir!r} (no '
            f'{last!r}). Train without --resume to start from scratch, pass --resume FILE, '
            'or pass --resume auto to resume when there is a checkpoint and start from '
            'scratch otherwise.')
    if not is_url(resume) and osp.isdir(resume):
        raise CheckpointMismatchError(
            f'--resume={resume!r} is a directory; pass a checkpoint file (e.g. the one named '
            f'in {osp.join(resume, "last_checkpoint")!r}), or --resume without a path to '
            'resume the latest checkpoint of --work-dir')
    return resume, None


def _bare_model(runner):
    from mmengine.model import is_model_wrapper
    return runner.model.module if is_model_wrapper(runner.model) else runner.model


def prepare_checkpoint(runner, path: str, key: str, resume: bool = False,
                       student: Optional[str] = None, student_flag: str = '--student',
                       strict: bool = True, strict_option: Optional[str] = None
                       ) -> Tuple[Dict[str, dict], CheckpointInfo]:
    """Read ``path`` safely, check it against ``runner.model``, and map it onto the model.

    For a resume the checkpoint must be a training checkpoint of this very model
    (:func:`~mmkd.utils.checkpoint_kinds.check_resumable`), and stale ``*.part`` files of
    killed saves are removed from the work dir. Otherwise the checkpoint is fitted to
    the model (:func:`~mmkd.utils.checkpoint_kinds.fit_checkpoint`): a plain or converted
    student goes into the student of a distillation model, a distillation checkpoint
    gives its student to a plain model, the student part must match strictly. What was
    loaded where is logged.

    Args:
        runner: an mmengine Runner whose model is built.
        path (str): the checkpoint.
        key (str): ``load_from``, ``--resume``, ``checkpoint`` (named in errors).
        resume (bool): check for a resume rather than a load of weights.
        student (str, optional): which student, where there are several.
        student_flag (str): the option that names ``student``, for errors.
        strict (bool): the student part must fit exactly (see
            :func:`~mmkd.utils.checkpoint_kinds.fit_checkpoint`); not for a resume,
            which is always exact.
        strict_option (str, optional): the option that turns ``strict`` off, for errors.

    Returns:
        tuple: ``({path: checkpoint to hand to mmengine}, info)``, for
        :func:`serve_checkpoints`.
    """
    model = _bare_model(runner)
    info = read_checkpoint(path, key)
    if resume:
        for folder in {runner.work_dir, osp.dirname(osp.abspath(path))} if not is_url(path) else {
                runner.work_dir}:
            remove_stale_parts(folder)
        check_resumable(info, model)
        checkpoint = info.checkpoint
        runner.logger.info(f'{info.shown}: {info.describe()}; resuming this run from it')
    else:
        fit = fit_checkpoint(info, model, student=student, student_flag=student_flag,
                             strict=strict, strict_option=strict_option)
        checkpoint = dict(info.checkpoint, state_dict=fit.state)
        if fit.partial:
            runner.logger.warning(fit.summary(info))
        else:
            runner.logger.info(fit.summary(info))
    return {path: checkpoint}, info


@contextlib.contextmanager
def serve_checkpoints(served: Dict[str, dict], key: str = 'checkpoint') -> Iterator[None]:
    """Hand mmengine the checkpoints read by :func:`prepare_checkpoint`, and read any other
    local checkpoint with :func:`mmkd.utils.safe_torch_load`, while the context lasts.

    mmengine's ``CheckpointLoader`` finds a loader by path prefix; each registered one is
    wrapped to return a served checkpoint first (once: it is not kept), and the local
    loader is replaced by the safe one, whose errors name ``key`` and the file. The
    original loaders are registered again on exit.
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    served = {abs_path(p) if not is_url(p) else p: c for p, c in served.items()}
    originals = dict(CheckpointLoader._schemes)

    def take(filename: str):
        name = filename if is_url(filename) else abs_path(filename)
        return served.pop(name, None)

    def wrap(prefix, loader):
        def load_from_mmkd_served(filename, map_location=None, *args, **kwargs):
            checkpoint = take(filename)
            if checkpoint is not None:
                return checkpoint
            if prefix == '':
                return safe_torch_load(osp.expanduser(filename), map_location=map_location,
                                       trusted=trusted_by_env(), key=key)
            return loader(filename, map_location, *args, **kwargs)
        return load_from_mmkd_served

    for prefix, loader in originals.items():
        CheckpointLoader.register_scheme(prefixes=prefix, loader=wrap(prefix, loader), force=True)
    if '' not in originals:
        CheckpointLoader.register_scheme(prefixes='', loader=wrap('', None), force=True)
    try:
        yield
    finally:
        for prefix, loader in originals.items():
            CheckpointLoader.register_scheme(prefixes=prefix, loader=loader, force=True)


_OPTIMIZER_MISMATCH = ("doesn't match the size of optimizer's group",
                       'different number of parameter groups', 'Mismatched `state_dict`')


@contextlib.contextmanager
def explain_resume_errors(runner, info: Optional[CheckpointInfo]) -> Iterator[None]:
    """Turn torch's optimizer-state mismatch during a resume into an error naming the file.

    A checkpoint of another config can hold the same tensors and still an optimizer
    with other parameter groups (another ``paramwise_cfg``, other frozen parts);
    torch then fails inside ``optimizer.load_state_dict`` with a bare traceback. Any
    other error passes unchanged.
    """
    if info is None:
        yield
        return
    saved = optimizer_group_sizes(info.checkpoint.get('optimizer'))
    try:
        yield
    except (ValueError, KeyError, AssertionError) as err:
        if not any(text in str(err) for text in _OPTIMIZER_MISMATCH):
            raise
        try:
            current = optimizer_group_sizes(runner.optim_wrapper.state_dict())
        except Exception:  # noqa: BLE001 - only for the message
            current = '?'
        raise CheckpointMismatchError(
            f'{info.shown}: its optimizer state does not fit the optimizer of this config '
            f'({str(err).strip().splitlines()[0]}): parameters per group in the file '
            f'{_groups(saved)}, in this config {_groups(current)}. The checkpoint was saved '
            'by another config (other optim_wrapper / paramwise_cfg, or other trainable '
            'parts); --resume only continues a run of this config. To start from its '
            f'weights pass `--cfg-options load_from={info.path}` instead.') from None


def user_errors() -> tuple:
    """The mistakes ``tools/*.py`` report as ``error: <message>`` (exit 1), no traceback.

    Each names the key or argument and the file, and says what to pass instead.
    """
    from mmkd.utils.checkpoint import CheckpointFileError, CheckpointNotFoundError, UnsafeCheckpointError
    return (CheckpointFileError, CheckpointNotFoundError, UnsafeCheckpointError,
            CheckpointMismatchError, NoCheckpointToResume)


def run_cli(main, argv=None):
    """Run a tool's ``main``; report :func:`user_errors` as one ``error:`` line, exit 1."""
    try:
        return main(argv)
    except user_errors() as err:
        raise SystemExit(f'error: {err}') from None
