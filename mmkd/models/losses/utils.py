"""Helpers shared by the losses: logits layout, KL reductions, argument checks."""
from __future__ import annotations

import math
import numbers
from typing import Any, Iterable

import torch

#: Reductions of :class:`~mmkd.models.losses.KLDivergence` (see :func:`reduce_kl`).
KL_REDUCTIONS = ('batchmean', 'pixelmean', 'sum', 'none')


def logits_to_rows(logits: torch.Tensor) -> torch.Tensor:
    """Move the class dimension (dim 1) last and flatten the rest into rows.

    (N, C) stays as is; (N, C, H, W) becomes (N*H*W, C), so per-pixel logits of a
    segmenter are treated as N*H*W independent distributions.
    """
    if logits.dim() == 2:
        return logits
    if logits.dim() < 2:
        raise ValueError(f'logits need a class dimension, got shape {tuple(logits.shape)}')
    channels = logits.shape[1]
    return logits.movedim(1, -1).reshape(-1, channels)


_KL_CHOICES = ("'batchmean' (sum / N, PyTorch's and MMRazor's meaning), 'pixelmean' (mean over "
               "the N*H*W per-pixel distributions, the same as 'batchmean' for (N, C) logits), "
               "'sum' or 'none' (elementwise)")


def check_kl_reduction(reduction: Any, owner: str = 'KLDivergence') -> str:
    """Return ``reduction`` if it is one of :data:`KL_REDUCTIONS`, else raise ValueError.

    ``'mean'`` is refused on purpose: ``F.kl_div`` divides by ``numel`` (N*C*H*W) for
    it, warns that this is not the KL, and announces that it will become
    ``'batchmean'``; a config that says ``'mean'`` therefore has no stable meaning.
    """
    if reduction == 'mean':
        raise ValueError(
            f"{owner}: reduction='mean' is ambiguous and refused: torch.nn.functional.kl_div "
            "divides by numel (N*C*H*W) for it (not a KL per sample; PyTorch announces it will "
            f"become 'batchmean'), and mmkd once treated it as 'batchmean'. Choose {_KL_CHOICES}. "
            "PyTorch's current 'mean' equals 'pixelmean' with loss_weight divided by C")
    if reduction not in KL_REDUCTIONS:
        raise ValueError(f'{owner}: reduction={reduction!r} is not valid; choose {_KL_CHOICES}')
    return reduction


def reduce_kl(terms: torch.Tensor, reduction: str) -> torch.Tensor:
    r"""Reduce elementwise KL terms :math:`p^T_{nc\ldots}(\log p^T - \log p^S)`.

    ``terms`` has the logits' shape (N, C[, H, W, ...]), class dimension 1. The
    names mean what they mean in ``torch.nn.functional.kl_div``, plus one of mmkd:

    * ``'batchmean'``: ``terms.sum() / N`` (N = batch size, ``terms.shape[0]``);
    * ``'pixelmean'``: ``terms.sum() / (N * H * W)``, the mean over the per-pixel
      distributions (the sum over classes averaged over every other position);
      the same as ``'batchmean'`` for (N, C) inputs;
    * ``'sum'``: ``terms.sum()``;
    * ``'none'``: ``terms`` unchanged (the logits' shape).

    ``'mean'`` is refused (see :func:`check_kl_reduction`).
    """
    check_kl_reduction(reduction)
    if terms.dim() < 2:
        raise ValueError(f'KL terms need a class dimension (dim 1), got shape {tuple(terms.shape)}')
    if reduction == 'none':
        return terms
    total = terms.sum()
    if reduction == 'sum':
        return total
    if reduction == 'batchmean':
        return total / terms.shape[0]
    return total / (terms.numel() // terms.shape[1])  # 'pixelmean'


def _is_number(value: Any, integer: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    return isinstance(value, numbers.Integral) if integer else True


def check_loss_args(owner: object,
                    *,
                    allow_negative_weight: bool = False,
                    positive: Iterable[str] = (),
                    non_negative: Iterable[str] = (),
                    integers: Iterable[str] = (),
                    optional: Iterable[str] = (),
                    **values: Any) -> None:
    """Check a loss's numeric constructor arguments; call it first in ``__init__``.

    Every loss of :mod:`mmkd.models.losses` calls this with its numeric arguments, so
    a config mistake stops the build with an error naming the loss, the argument and
    the value, instead of a string multiplying a tensor later (or a sign error
    training the student away from the teacher). Rules:

    * every value in ``values`` is a real number (``int`` or ``float``; ``bool`` and
      ``str`` such as ``tau='4'`` are refused: ``TypeError``), an ``int`` if its name
      is in ``integers``, and ``None`` only if its name is in ``optional``;
    * numbers are finite (``ValueError`` for NaN / inf);
    * ``tau`` (a temperature) must be > 0, as every name in ``positive``; names in
      ``non_negative`` must be >= 0 (``ValueError``);
    * ``loss_weight`` must be >= 0 unless ``allow_negative_weight=True``: a negative
      weight turns the loss into something the optimiser maximises, which is
      almost always a sign slip. Losses take ``allow_negative_weight`` as a
      constructor argument and pass it on, so a config that really means it says so.

    Args:
        owner: the loss (``self``) or its class; its name goes into the messages.
        allow_negative_weight (bool): accept ``loss_weight < 0``.
        positive, non_negative, integers, optional: argument names with the extra
            rules above.
        **values: ``name=value`` of the arguments to check.

    Raises:
        TypeError: a value is not a number (of the right kind).
        ValueError: a value is out of range.
    """
    cls = owner if isinstance(owner, type) else type(owner)
    name_of = cls.__name__
    if not isinstance(allow_negative_weight, bool):
        raise TypeError(f'{name_of}: allow_negative_weight={allow_negative_weight!r} must be a bool')
    integers, optional = set(integers), set(optional)
    positive = set(positive) | ({'tau'} & set(values))
    non_negative = set(non_negative)
    if 'loss_weight' in values and not allow_negative_weight:
        non_negative.add('loss_weight')
    unknown = (positive | non_negative | integers | optional) - set(values)
    if unknown:  # a typo in the caller, not in the config
        raise KeyError(f'check_loss_args({name_of}): rules for arguments not given: {sorted(unknown)}')
    for name, value in values.items():
        if value is None and name in optional:
            continue
        integer = name in integers
        if not _is_number(value, integer):
            kind = 'an int' if integer else 'a number (int or float)'
            extra = ' or None' if name in optional else ''
            raise TypeError(f'{name_of}: {name}={value!r} must be {kind}{extra}, got '
                            f'{type(value).__name__}')
        if not math.isfinite(value):
            raise ValueError(f'{name_of}: {name}={value!r} must be finite')
        if name in positive and not value > 0:
            raise ValueError(f'{name_of}: {name} must be > 0, got {value!r}')
        if name in non_negative and not value >= 0:
            hint = (' (pass allow_negative_weight=True to the loss if a negative weight is '
                    'intended)' if name == 'loss_weight' else '')
            raise ValueError(f'{name_of}: {name} must be >= 0, got {value!r}{hint}')
