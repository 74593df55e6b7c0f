"""Hard-concrete (L0) structure masks of a CLIP model: TinyCLIP's automatic inheritance.

TinyCLIP (Wu et al., ICCV 2023, Sec. 3.2, "automatic weight inheritance") learns
which hidden dimensions, attention heads and MLP units of the teacher to keep with
the L0 relaxation of Louizos et al. (ICLR 2018) as used by CoFi pruning (Xia et al.,
ACL 2022):

* Each prunable unit has a learnable ``log_alpha``. A training step samples
  :math:`u \\sim U(\\epsilon, 1-\\epsilon)` and
  :math:`s = \\sigma((\\log u - \\log(1-u) + \\log\\alpha)/\\beta)`,
  :math:`z = \\min(1, \\max(0, s(r - l) + l))` with :math:`\\beta = 2/3`,
  :math:`(l, r) = (-0.1, 1.1)` (stretched, then clipped: exact zeros and ones occur).
* :math:`P(z > 0) = \\sigma(\\log\\alpha - \\beta \\log(-l/r))` gives the expected
  number of kept units, hence the expected number of kept parameters and the
  expected sparsity :math:`\\hat s` of the prunable weights (attention and MLP
  matrices of every block).
* A Lagrangian term drives :math:`\\hat s` to a target :math:`t` that ramps linearly
  from ``start_sparsity`` to ``target_sparsity`` over ``warmup_iters`` steps:
  :math:`\\lambda_1 \\max(t-\\hat s, 0) + \\lambda_2 \\max(t-\\hat s, 0)^2`; the masks
  minimise it while :math:`\\lambda_{1,2}` (init 10) maximise it (gradient ascent,
  done here with a gradient-reversal so one optimizer serves both). TinyCLIP
  combines the image and text towers into one expected sparsity
  (``--total-loss-flag``), as here.
* After every optimizer step TinyCLIP clamps ``log_alpha`` to
  :math:`[\\ln 0.01, \\ln 100]`; :meth:`CLIPSparsityMasks.clamp_` does it before the
  next forward (same effect).
* Deterministic masks (evaluation and pruning): :math:`\\sigma(0.8\\,\\log\\alpha/\\beta)`
  with the :math:`\\mathrm{round}(n - \\sum P(z>0))` smallest entries set to 0,
  per layer for heads and MLP units, over the tower for hidden dims.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

BETA = 2.0 / 3.0
LIMIT_L, LIMIT_R = -0.1, 1.1
EPS = 1e-6
MAGIC = 0.8  # TinyCLIP/CoFi's factor of the deterministic soft mask
LOG_ALPHA_MIN, LOG_ALPHA_MAX = math.log(1e-2), math.log(1e2)
PRUNE_TYPES = ('hidden', 'heads', 'mlp')


def hard_concrete_sample(log_alpha: torch.Tensor, u: Optional[torch.Tensor] = None,
                         beta: float = BETA, limits=(LIMIT_L, LIMIT_R)) -> torch.Tensor:
    """One hard-concrete sample per entry; ``u`` (uniform noise) is drawn if not given."""
    if u is None:
        u = torch.empty_like(log_alpha).uniform_(EPS, 1.0 - EPS)
    s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + log_alpha) / beta)
    return (s * (limits[1] - limits[0]) + limits[0]).clamp(0.0, 1.0)


def hard_concrete_keep_prob(log_alpha: torch.Tensor, beta: float = BETA,
                            limits=(LIMIT_L, LIMIT_R)) -> torch.Tensor:
    """:math:`P(z > 0)` of each entry (1 - the stretched distribution's CDF at 0)."""
    return torch.sigmoid(log_alpha - beta * math.log(-limits[0] / limits[1])).clamp(EPS, 1 - EPS)


def deterministic_mask(log_alpha: torch.Tensor, beta: float = BETA) -> torch.Tensor:
    """The evaluation/pruning mask: soft values, the expected number of zeros set to 0."""
    soft = torch.sigmoid(log_alpha.detach() / beta * MAGIC)
    num_zeros = int(round(log_alpha.numel() - float(hard_concrete_keep_prob(log_alpha.detach()).sum())))
    if num_zeros > 0:
        soft = soft.clone()
        soft[torch.topk(soft, k=num_zeros, largest=False).indices] = 0.0
    return soft


class _ReverseGrad(torch.autograd.Function):
    """Identity forward, negated gradient: the Lagrange multipliers ascend."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -grad


class TowerMasks(nn.Module):
    """Masks of one transformer tower: hidden dims, heads per layer, MLP units per layer.

    Args:
        width (int): hidden size d.
        heads (list[int]): attention heads of each layer.
        head_dim (int): size of one head.
        mlp (list[int]): MLP hidden units of each layer.
        prune_types (tuple[str]): subset of ('hidden', 'heads', 'mlp').
        init_log_alpha (float): initial ``log_alpha`` (TinyCLIP: 10, i.e. keep).
    """

    def __init__(self, width: int, heads: Sequence[int], head_dim: int, mlp: Sequence[int],
                 prune_types: Sequence[str] = PRUNE_TYPES, init_log_alpha: float = 10.0) -> None:
        super().__init__()
        self.width, self.head_dim = width, head_dim
        self.num_heads, self.mlp_units = list(heads), list(mlp)
        self.prune_types = tuple(prune_types)

        def param(n):
            return nn.Parameter(torch.full((n, ), float(init_log_alpha)))

        self.hidden = param(width) if 'hidden' in prune_types else None
        self.heads = nn.ParameterList([param(h) for h in heads]) if 'heads' in prune_types else None
        self.mlp = nn.ParameterList([param(m) for m in mlp]) if 'mlp' in prune_types else None

    def log_alphas(self) -> List[torch.Tensor]:
        out = [self.hidden] if self.hidden is not None else []
        for group in (self.heads, self.mlp):
            if group is not None:
                out.extend(group)
        return out

    def masks(self, sample: bool) -> Dict[str, object]:
        """``{'hidden': (d,) or None, 'heads': [(H_l,) or None], 'mlp': [(m_l,) or None]}``."""
        make = hard_concrete_sample if sample else deterministic_mask
        layers = len(self.num_heads)
        return dict(
            hidden=make(self.hidden) if self.hidden is not None else None,
            heads=[make(p) for p in self.heads] if self.heads is not None else [None] * layers,
            mlp=[make(p) for p in self.mlp] if self.mlp is not None else [None] * layers)

    def _ref(self) -> torch.Tensor:
        return self.log_alphas()[0]

    def _kept(self, group, sizes):
        if group is None:  # not pruned: every unit is kept
            return [self._ref().new_tensor(float(n)) for n in sizes]
        return [hard_concrete_keep_prob(p).sum() for p in group]

    def expected_params(self) -> torch.Tensor:
        """Expected kept prunable parameters: E[d] * sum_l (4 hd E[H_l] + 2 E[m_l]).

        Attention holds 4 matrices (q, k, v, out) of d x (H_l hd); the MLP 2 of
        d x m_l. Biases and norms are ignored, as in TinyCLIP/CoFi. Hidden dims and
        heads/units are independent, so expectations multiply.
        """
        d = hard_concrete_keep_prob(self.hidden).sum() if self.hidden is not None \
            else self._ref().new_tensor(float(self.width))
        heads = self._kept(self.heads, self.num_heads)
        mlp = self._kept(self.mlp, self.mlp_units)
        per_layer = sum(4 * self.head_dim * h + 2 * m for h, m in zip(heads, mlp))
        return d * per_layer

    def full_params(self) -> float:
        return float(self.width * sum(4 * self.head_dim * h + 2 * m
                                      for h, m in zip(self.num_heads, self.mlp_units)))


class CLIPSparsityMasks(nn.Module):
    """Hard-concrete masks over both towers of an open_clip ``CLIP`` + the Lagrangian.

    Args:
        structure (dict): tower -> ``dict(width, heads=[...], head_dim, mlp=[...])``
            (see :func:`mmkd.models.surgery.clip_structure.structure_of`).
        target_sparsity (float): sparsity of the prunable weights to reach, in [0, 1).
        start_sparsity (float): where the target ramp starts.
        warmup_iters (int): iterations of the linear ramp (TinyCLIP ``--sparsity-warmup``).
        prune_types (tuple[str]): subset of ('hidden', 'heads', 'mlp').
        towers (tuple[str]): subset of ('visual', 'text') to prune.
        init_log_alpha (float): TinyCLIP uses 10.
        init_lambda (float): initial Lagrange multipliers (TinyCLIP: 10).
    """

    def __init__(self, structure: Dict[str, dict], target_sparsity: float,
                 start_sparsity: float = 0.0, warmup_iters: int = 0,
                 prune_types: Sequence[str] = PRUNE_TYPES,
                 towers: Sequence[str] = ('visual', 'text'),
                 init_log_alpha: float = 10.0, init_lambda: float = 10.0) -> None:
        super().__init__()
        bad = [t for t in prune_types if t not in PRUNE_TYPES]
        if bad or not prune_types:
            raise ValueError(f'sparsity.prune_types={tuple(prune_types)!r}; valid: a non-empty '
                             f'subset of {PRUNE_TYPES}')
        bad = [t for t in towers if t not in structure]
        if bad or not towers:
            raise ValueError(f'sparsity.towers={tuple(towers)!r}; valid: a non-empty subset of '
                             f'{tuple(structure)}')
        for name, value in (('target_sparsity', target_sparsity), ('start_sparsity', start_sparsity)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f'sparsity.{name}={value} must be in [0, 1)')
        if warmup_iters < 0:
            raise ValueError(f'sparsity.warmup_iters={warmup_iters} must be >= 0')
        self.target_sparsity, self.start_sparsity = target_sparsity, start_sparsity
        self.warmup_iters = warmup_iters
        self.towers = nn.ModuleDict({
            t: TowerMasks(structure[t]['width'], structure[t]['heads'], structure[t]['head_dim'],
                          structure[t]['mlp'], prune_types, init_log_alpha) for t in towers})
        self.lambda_1 = nn.Parameter(torch.tensor(float(init_lambda)))
        self.lambda_2 = nn.Parameter(torch.tensor(float(init_lambda)))
        # training iterations seen (persistent: the ramp survives a resume)
        self.register_buffer('step', torch.tensor(0, dtype=torch.long))

    def forward(self, sample: bool) -> Dict[str, dict]:
        return {t: m.masks(sample) for t, m in self.towers.items()}

    @torch.no_grad()
    def clamp_(self) -> None:
        for tower in self.towers.values():
            for p in tower.log_alphas():
                p.clamp_(LOG_ALPHA_MIN, LOG_ALPHA_MAX)

    def expected_sparsity(self) -> torch.Tensor:
        kept = sum(m.expected_params() for m in self.towers.values())
        full = sum(m.full_params() for m in self.towers.values())
        return 1.0 - kept / full

    def current_target(self, step: Optional[int] = None) -> float:
        step = int(self.step) if step is None else step
        if self.warmup_iters == 0:
            return self.target_sparsity
        ramp = min(1.0, step / self.warmup_iters)
        return self.start_sparsity + (self.target_sparsity - self.start_sparsity) * ramp

    def lagrangian(self, step: Optional[int] = None) -> Dict[str, torch.Tensor]:
        """The penalty (minimised by the masks, maximised by the multipliers) and logs."""
        expected = self.expected_sparsity()
        target = self.current_target(step)
        gap = torch.clamp(target - expected, min=0.0)
        lam1, lam2 = _ReverseGrad.apply(self.lambda_1), _ReverseGrad.apply(self.lambda_2)
        return dict(loss_lagrangian=lam1 * gap + lam2 * gap * gap,
                    expected_sparsity=expected.detach(),
                    target_sparsity=expected.new_tensor(target))
