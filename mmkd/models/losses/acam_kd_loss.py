"""ACAM-KD: adaptive and cooperative attention masking (Lan & Tian, ICCV 2025)."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from mmkd.registry import MODELS

from .utils import check_loss_args

_EPS = 1e-6
_NORM_EPS = 1e-5  # variance floor of the standardisation in ASCM (normalize_fused)


def dice_diversity(masks: torch.Tensor, reduction: str = 'mean') -> torch.Tensor:
    r"""Dice similarity between every ordered pair of different masks.

    For the masks :math:`M_1..M_M` of one sample (each flattened to a vector),

    .. math::
        D_{ij} = \frac{2\,\langle M_i, M_j\rangle}{\|M_i\|^2 + \|M_j\|^2},\qquad
        L_{div} = \operatorname{red}_{i \ne j} D_{ij}

    where ``red`` is the mean (``'mean'``, a value in [0, 1] whatever M is) or the
    sum (``'sum'``, the literal double sum of the paper) over the M(M-1) ordered
    pairs. The result is averaged over the batch.

    Args:
        masks: (N, M, L) non-negative masks.
        reduction: 'mean' or 'sum' over the pairs.

    Returns:
        Scalar tensor. 0 when M == 1 (there is no pair).
    """
    m = masks.shape[1]
    if m < 2:
        return masks.sum() * 0.0
    gram = masks @ masks.transpose(1, 2)  # (N, M, M): <M_i, M_j>
    sq = torch.diagonal(gram, dim1=1, dim2=2)  # (N, M): ||M_i||^2
    dice = 2 * gram / (sq[:, :, None] + sq[:, None, :]).clamp_min(_EPS)
    off_diag = ~torch.eye(m, dtype=torch.bool, device=masks.device)
    pair_sum = dice[:, off_diag].sum(-1)  # (N,)
    if reduction == 'mean':
        pair_sum = pair_sum / (m * (m - 1))
    return pair_sum.mean()


#: Normalisers of the masked mimicking terms (E7)-(E8); see :class:`ACAMKDLoss`.
MASK_NORMALIZERS = ('energy', 'mass')

#: Implementations of the fusion attention (E3)-(E4); see :func:`cross_attention`.
ATTENTION_IMPLS = ('sdpa', 'chunked', 'full')


def _attend_block(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                  scale: float) -> torch.Tensor:
    # q: (N, Lq, Cq), k: (N, Lk, Cq), v: (N, Lk, C) -> (N, Lq, C)
    return torch.softmax((q @ k.transpose(1, 2)) * scale, dim=-1) @ v


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """One call of ``F.scaled_dot_product_attention`` with one head.

    The fused kernels (flash attention on CPU, memory-efficient attention on CUDA)
    need queries, keys and values of one head size; here C_q = C/2 != C, and with
    unequal sizes PyTorch falls back to its math path, which materialises the
    P x P weights. So q, k and v are zero-padded to a common size (a multiple of 8,
    which the CUDA kernels want): zero columns add nothing to q.k, the padded
    value columns come out zero and are cut off, and the scale stays 1/sqrt(C_q).
    The kernels also need a unit stride along the channels (q, k, v arrive here as
    transposed NCHW maps), hence ``contiguous()``: without it the math path runs
    (measured: 3.2 GiB instead of 0.15 GiB for one 256 x 100 x 168 level).
    """
    cq, c = q.shape[-1], v.shape[-1]
    d = -(-max(cq, c) // 8) * 8

    def head(x: torch.Tensor, size: int) -> torch.Tensor:
        return F.pad(x, (0, d - size)).contiguous()[:, None]  # (N, 1, L, d)

    out = F.scaled_dot_product_attention(head(q, cq), head(k, cq), head(v, c), scale=scale)
    return out[:, 0, :, :c]


def cross_attention(q: torch.Tensor,
                    k: torch.Tensor,
                    v: torch.Tensor,
                    chunk_size: int | None = None,
                    impl: str = 'sdpa') -> torch.Tensor:
    r""":math:`\mathrm{softmax}(q k^\top / \sqrt{C_q})\, v` for q, k: (N, L, C_q), v: (N, L, C).

    ``impl`` picks how, all exact (same values and gradients up to float rounding):

    * ``'sdpa'``: ``torch.nn.functional.scaled_dot_product_attention`` (see
      :func:`_sdpa`); its fused kernels never hold the P x P weights in forward or
      backward (memory O(P C)).
    * ``'chunked'``: queries ``chunk_size`` rows at a time, each chunk under
      activation checkpointing when autograd records, so at most one
      (chunk_size x Lk) block of weights is alive (each output row depends only on
      its own query row, so chunking is exact). The pre-SDPA implementation.
    * ``'full'``: the P x P weights at once (autograd keeps them for backward).
    """
    if impl not in ATTENTION_IMPLS:
        raise ValueError(f'cross_attention: impl={impl!r} is not valid; choose one of '
                         f'{ATTENTION_IMPLS}')
    scale = 1.0 / math.sqrt(q.shape[-1])
    if impl == 'sdpa':
        return _sdpa(q, k, v, scale)
    n_q = q.shape[1]
    if impl == 'full' or chunk_size is None or n_q <= chunk_size:
        return _attend_block(q, k, v, scale)
    needs_grad = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad
                                              or v.requires_grad)
    outs = []
    for start in range(0, n_q, chunk_size):
        q_chunk = q[:, start:start + chunk_size]
        if needs_grad:
            outs.append(checkpoint(_attend_block, q_chunk, k, v, scale, use_reentrant=False))
        else:
            outs.append(_attend_block(q_chunk, k, v, scale))
    return torch.cat(outs, dim=1)


@MODELS.register_module()
class ACAMKDLoss(nn.Module):
    r"""ACAM-KD feature distillation with cooperative spatial and channel masks.

    "ACAM-KD: Adaptive and Cooperative Attention Masking for Knowledge
    Distillation", Qizhen Lan and Qing Tian, ICCV 2025, arXiv:2503.06307.

    Notation: teacher feature :math:`F_T`, student feature :math:`F_S`, both
    (C, H, W) per sample after alignment, :math:`P = HW` positions,
    :math:`C_q = \lfloor C/2 \rfloor`, :math:`M` masks, :math:`\sigma` the sigmoid.
    Equation labels (E1)-(E9) are ours; the paper's own equation numbers could not
    be checked (see ``configs/acam_kd/README.md``).

    Alignment (the paper's :math:`f_{align}`)::

        (E1)  F'_S = f_align(F_S)   1x1 conv C_S -> C_T when C_S != C_T, else identity

    STCA-FF, student-teacher cross-attention feature fusion (teacher queries,
    student keys and values)::

        (E2)  Q = W_q F_T,  K = W_k F'_S,  V = W_v F'_S      W_q, W_k: C -> C_q,  W_v: C -> C
        (E3)  A = softmax_j( Q_i . K_j / sqrt(C_q) )          A in R^{P x P}, rows sum to 1
        (E4)  F_fused = A V       i.e. F_fused[:, i] = sum_j A_ij V[:, j]   (no residual)

    ASCM, adaptive spatial-channel masking with M learnable selection units::

        (E5)  M^c = sigma(m_c v),   m_c in R^{M x 1}, v = mean_p F_fused[:, p] in R^{1 x C}
              -> M^c in (0,1)^{M x C},  M^c_{m,k} = sigma(m_c[m] * v_k)
        (E6)  M^s = sigma(m_s z),   m_s in R^{M x C}, z = F_fused flattened in R^{C x P}
              -> M^s in (0,1)^{M x P}

    Mask-normalised feature mimicking, with D = F_T - F'_S::

        (E7)  L^c = 1/M sum_m  || M^c_m (x) D ||^2 / ( HW * |M^c_m| )
        (E8)  L^s = 1/M sum_m  || M^s_m (x) D ||^2 / ( C  * |M^s_m| )

    where (x) broadcasts the mask over the other axis, so each squared error is
    weighted by the *square* of the mask. ``|M|`` is the mask mass sum M, as the paper
    writes it (``mask_normalizer='mass'``, default; MasKD, which ACAM-KD builds on,
    does the same with masks it never trains) or the mask energy sum M^2
    (``'energy'``: a weighted mean of the error, equal for 0/1 masks, independent of
    a common mask level).

    Dice diversity between the masks (see :func:`dice_diversity`)::

        (E9)  L_div = Dice(M^s) + Dice(M^c),  Dice(M) = mean_{i != j} 2<M_i,M_j>/(|M_i|^2+|M_j|^2)

    Returned value (one scalar; all terms are averaged over the batch)::

        loss_weight * ( channel_weight * L^c + spatial_weight * L^s
                        + diversity_weight * L_div )

    The paper's objective is :math:`L_{task} + \alpha (L^c + L^s) + \lambda L_{div}`
    with :math:`\alpha = \lambda = 1`, i.e. every weight here at its default 1.0.
    Paper settings: :math:`M = 6` on each FPN level for detection, :math:`M = 19`
    (the number of Cityscapes classes) on the segmentation logits.

    Standardisation (``normalize_fused=True``, default; a choice, the paper writes
    E5-E6 on the raw fused feature): per sample, z is standardised per channel over
    the positions and v over the channels (population variance + 1e-5) before the
    selection units. Each mask's logits then average to 0, so no mask can sit at a
    free level: F_fused = A V is nearly constant over the positions at the start
    (nearly uniform attention), and without this the units could only move each
    whole mask up or down, which (E7)-(E9) then drive to constant 0/1 masks.

    Gradients (the defaults are the paper's cooperative form: the student takes part
    in the fusion and the masks learn from every term; its Tab. 10 credits the gain
    to the student taking part):

      * ``preds_T`` is a target: it is detached and never receives a gradient.
      * The student receives its gradient through :math:`D` in (E7)-(E8) (and
        ``f_align``) and, where its feature enters STCA-FF as keys and values,
        through the masks. ``detach_student_in_fusion=True`` cuts the second path
        (the fusion still sees the student's feature in the forward pass).
      * The fusion/masking parameters (W_q, W_k, W_v, m_c, m_s) learn from
        (E7)-(E8) and (E9); ``detach_masks=True`` makes the masks constants in
        (E7)-(E8), so that they learn from (E9) only.
      * Without the standardisation the cooperative form collapses: with the mass
        normaliser (E7)-(E8) are linear in a common mask level (masks at level mu
        give mu * MSE), so their gradient lowers every mask, and on the shapes
        detection demo all spatial masks fell below 0.05 within 50-225 iterations.
        The measurements and the detached variants' behaviour are in
        ``configs/acam_kd/README.md``.

    Attention (``attention``): ``'sdpa'`` (default) runs (E3)-(E4) through
    ``torch.nn.functional.scaled_dot_product_attention``, whose fused kernels (flash
    attention on CPU, memory-efficient attention on CUDA) never hold the P x P
    weights; exact. ``'chunked'`` (the earlier implementation) processes
    ``attn_chunk_size`` queries at a time under activation checkpointing: exact, but
    about twice the memory of SDPA on CPU; kept for back-ends where SDPA falls back
    to its math kernel. ``'full'`` materialises P x P (tests, tiny inputs).
    ``kv_pool_size`` average-pools keys and values to a fixed grid (an
    approximation; equal to the exact attention when the grid equals the input).
    Per-level memory and time at COCO sizes: ``configs/acam_kd/README.md``.

    Choices where the paper is silent: no biases in W_q/W_k/W_v (the paper writes
    plain matrices); C_q = max(1, C // 2) for odd C; selection units initialised
    fan-in style, m_c ~ N(0, 1) and m_s ~ N(0, 1/C) (``init_std`` overrides both;
    with MasKD's 0.01 every mask starts at ~0.5, all masks are equal, and the
    diversity gradient vanishes at that symmetric point); diversity applied to both mask families and averaged
    (not summed) over the pairs; every term averaged over the batch; one loss
    instance (own parameters) per feature level.

    ``paired_inputs = ()``: student and teacher may have different channel counts
    (aligned here); spatial sizes must match and are checked in :meth:`forward`.

    Args:
        student_channels (int): channels of ``preds_S``.
        teacher_channels (int): channels of ``preds_T`` (C above).
        num_masks (int): M, the number of selection units per mask family.
        channel_weight (float): weight of :math:`L^c`.
        spatial_weight (float): weight of :math:`L^s`.
        diversity_weight (float): weight of :math:`L_{div}` (the paper's lambda).
        loss_weight (float): multiplies the whole sum (the paper's alpha when the
            diversity weight is scaled accordingly).
        attention (str): 'sdpa' (default), 'chunked' or 'full'; see Attention.
        attn_chunk_size (int | None): query chunk of ``attention='chunked'``; None
            materialises the full P x P matrix there.
        kv_pool_size (int | tuple[int, int] | None): grid the keys/values are
            average-pooled to (approximate attention); None disables pooling.
        diversity_masks (Sequence[str]): which masks the diversity term covers, a
            subset of ('spatial', 'channel').
        diversity_reduction (str): 'mean' or 'sum' over mask pairs.
        detach_student_in_fusion (bool): see Gradients.
        detach_masks (bool): see Gradients.
        mask_normalizer (str): 'mass' (sum M, the paper's formula as written,
            default) or 'energy' (sum M^2); see (E7)-(E8).
        normalize_fused (bool): standardise the fused feature before the selection
            units; see Standardisation.
        init_std (float | None): std of the selection units' normal init; None for
            the fan-in default above.
        allow_negative_weight (bool): accept ``loss_weight < 0``.
    """

    paired_inputs = ()

    def __init__(self,
                 student_channels: int,
                 teacher_channels: int,
                 num_masks: int = 6,
                 channel_weight: float = 1.0,
                 spatial_weight: float = 1.0,
                 diversity_weight: float = 1.0,
                 loss_weight: float = 1.0,
                 attention: str = 'sdpa',
                 attn_chunk_size: int | None = 1024,
                 kv_pool_size: int | tuple[int, int] | None = None,
                 diversity_masks: Sequence[str] = ('spatial', 'channel'),
                 diversity_reduction: str = 'mean',
                 detach_student_in_fusion: bool = False,
                 detach_masks: bool = False,
                 mask_normalizer: str = 'mass',
                 normalize_fused: bool = True,
                 init_std: float | None = None,
                 allow_negative_weight: bool = False) -> None:
        super().__init__()
        check_loss_args(self, student_channels=student_channels,
                        teacher_channels=teacher_channels, num_masks=num_masks,
                        channel_weight=channel_weight, spatial_weight=spatial_weight,
                        diversity_weight=diversity_weight, loss_weight=loss_weight,
                        attn_chunk_size=attn_chunk_size, init_std=init_std,
                        integers=('student_channels', 'teacher_channels', 'num_masks',
                                  'attn_chunk_size'),
                        positive=('student_channels', 'teacher_channels', 'num_masks',
                                  'attn_chunk_size', 'init_std'),
                        optional=('attn_chunk_size', 'init_std'),
                        allow_negative_weight=allow_negative_weight)
        if attention not in ATTENTION_IMPLS:
            raise ValueError(f'ACAMKDLoss: attention={attention!r} is not valid; choose one of '
                             f"{ATTENTION_IMPLS} ('sdpa': fused exact kernels, the default; "
                             "'chunked': exact, query chunks of attn_chunk_size under activation "
                             "checkpointing; 'full': the P x P matrix at once)")
        if kv_pool_size is not None:
            pool = (kv_pool_size, kv_pool_size) if isinstance(kv_pool_size, int) else tuple(
                kv_pool_size)
            if len(pool) != 2 or not all(isinstance(p, int) and p >= 1 for p in pool):
                raise ValueError(
                    f'ACAMKDLoss: kv_pool_size must be a positive int, a pair of them, or None, '
                    f'got {kv_pool_size!r}')
            kv_pool_size = pool
        unknown = set(diversity_masks) - {'spatial', 'channel'}
        if unknown:
            raise ValueError(f'diversity_masks={tuple(diversity_masks)!r} has unknown entries '
                             f"{sorted(unknown)}; valid: 'spatial', 'channel'")
        if mask_normalizer not in MASK_NORMALIZERS:
            raise ValueError(
                f'ACAMKDLoss: mask_normalizer={mask_normalizer!r} is not valid; choose '
                "'energy' (divide by sum(M^2): a weighted mean of the error, independent of the "
                "mask level) or 'mass' (divide by sum(M), the formula as the paper writes it)")
        if diversity_reduction not in ('mean', 'sum'):
            raise ValueError(
                f"diversity_reduction={diversity_reduction!r} is not valid; choose 'mean' or 'sum'")

        self.student_channels = student_channels
        self.teacher_channels = teacher_channels
        self.num_masks = num_masks
        self.channel_weight = channel_weight
        self.spatial_weight = spatial_weight
        self.diversity_weight = diversity_weight
        self.loss_weight = loss_weight
        self.attention = attention
        self.attn_chunk_size = attn_chunk_size
        self.kv_pool_size = kv_pool_size
        self.diversity_masks = tuple(diversity_masks)
        self.diversity_reduction = diversity_reduction
        self.detach_student_in_fusion = detach_student_in_fusion
        self.detach_masks = detach_masks
        self.mask_normalizer = mask_normalizer
        self.normalize_fused = normalize_fused

        c = teacher_channels
        self.query_channels = max(1, c // 2)
        # (E1) f_align
        if student_channels != teacher_channels:
            self.align = nn.Conv2d(student_channels, c, kernel_size=1)
        else:
            self.align = nn.Identity()
        # (E2) projections; plain matrices as in the paper (no bias)
        self.query_proj = nn.Conv2d(c, self.query_channels, kernel_size=1, bias=False)
        self.key_proj = nn.Conv2d(c, self.query_channels, kernel_size=1, bias=False)
        self.value_proj = nn.Conv2d(c, c, kernel_size=1, bias=False)
        # (E5)-(E6) selection units. Fan-in scaled by default: the channel gain multiplies
        # one number, a spatial unit sums C numbers, so both start with logits of about the
        # size of the fused feature and the M masks start different from each other.
        std_c = 1.0 if init_std is None else init_std
        std_s = 1.0 / math.sqrt(c) if init_std is None else init_std
        self.channel_units = nn.Parameter(torch.empty(num_masks, 1).normal_(0, std_c))
        self.spatial_units = nn.Parameter(torch.empty(num_masks, c).normal_(0, std_s))

    def extra_repr(self) -> str:
        return (f'student_channels={self.student_channels}, '
                f'teacher_channels={self.teacher_channels}, num_masks={self.num_masks}, '
                f'attention={self.attention!r}, kv_pool_size={self.kv_pool_size}, '
                f'detach_masks={self.detach_masks}, mask_normalizer={self.mask_normalizer!r}, '
                f'detach_student_in_fusion={self.detach_student_in_fusion}')

    # ------------------------------------------------------------------ checks
    def _check_inputs(self, preds_S: torch.Tensor, preds_T: torch.Tensor) -> None:
        if preds_S.dim() != 4 or preds_T.dim() != 4:
            raise ValueError('ACAMKDLoss expects NCHW preds_S and preds_T, got '
                             f'preds_S {tuple(preds_S.shape)} and preds_T {tuple(preds_T.shape)}')
        if preds_S.shape[0] != preds_T.shape[0] or preds_S.shape[2:] != preds_T.shape[2:]:
            raise ValueError(
                'ACAMKDLoss needs preds_S and preds_T with the same batch size and spatial '
                f'size, got preds_S {tuple(preds_S.shape)} and preds_T {tuple(preds_T.shape)}')
        if preds_S.shape[1] != self.student_channels:
            raise ValueError(f'preds_S has {preds_S.shape[1]} channels '
                             f'(shape {tuple(preds_S.shape)}) but student_channels='
                             f'{self.student_channels}')
        if preds_T.shape[1] != self.teacher_channels:
            raise ValueError(f'preds_T has {preds_T.shape[1]} channels '
                             f'(shape {tuple(preds_T.shape)}) but teacher_channels='
                             f'{self.teacher_channels}')

    # ------------------------------------------------------------- components
    def fuse(self, feat_S: torch.Tensor, feat_T: torch.Tensor) -> torch.Tensor:
        """STCA-FF (E2)-(E4) on an aligned student feature and a teacher feature.

        Args:
            feat_S: (N, C, H, W) aligned student feature (keys and values).
            feat_T: (N, C, H, W) teacher feature (queries).

        Returns:
            (N, C, H, W) fused feature.
        """
        n, c, h, w = feat_T.shape
        q = self.query_proj(feat_T).flatten(2).transpose(1, 2)  # (N, P, Cq)
        k = self.key_proj(feat_S)
        v = self.value_proj(feat_S)
        if self.kv_pool_size is not None:
            k = F.adaptive_avg_pool2d(k, self.kv_pool_size)
            v = F.adaptive_avg_pool2d(v, self.kv_pool_size)
        k = k.flatten(2).transpose(1, 2)  # (N, Pk, Cq)
        v = v.flatten(2).transpose(1, 2)  # (N, Pk, C)
        fused = cross_attention(q, k, v, self.attn_chunk_size, self.attention)  # (N, P, C)
        return fused.transpose(1, 2).reshape(n, c, h, w)

    def masks_from_fused(self, fused: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ASCM (E5)-(E6).

        Returns:
            channel masks (N, M, C) and spatial masks (N, M, H*W).
        """
        v = fused.mean(dim=(2, 3))  # (N, C)
        z = fused.flatten(2)  # (N, C, P)
        if self.normalize_fused:
            # standardise: v over the channels, z per channel over the positions, so
            # that no mask can be (nearly) constant at its (learned) level
            v = (v - v.mean(1, keepdim=True)) / torch.sqrt(
                v.var(1, keepdim=True, correction=0) + _NORM_EPS)
            z = (z - z.mean(2, keepdim=True)) / torch.sqrt(
                z.var(2, keepdim=True, correction=0) + _NORM_EPS)
        channel = torch.sigmoid(self.channel_units[None] * v[:, None, :])  # (N, M, C)
        spatial = torch.sigmoid(torch.einsum('mc,ncp->nmp', self.spatial_units, z))  # (N, M, P)
        return channel, spatial

    def _masks(self, preds_S: torch.Tensor,
               preds_T: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                               torch.Tensor]:
        self._check_inputs(preds_S, preds_T)
        feat_T = preds_T.detach()
        feat_S = self.align(preds_S)
        fusion_S = feat_S.detach() if self.detach_student_in_fusion else feat_S
        fused = self.fuse(fusion_S, feat_T)
        channel, spatial = self.masks_from_fused(fused)
        return feat_S, feat_T, channel, spatial

    def compute_masks(self, preds_S: torch.Tensor,
                      preds_T: torch.Tensor) -> dict[str, torch.Tensor]:
        """Masks for analysis/visualisation (wrap in ``torch.no_grad()`` if needed).

        Returns:
            dict with ``'channel'`` (N, M, C) and ``'spatial'`` (N, M, H, W), values in (0, 1).
        """
        _, _, channel, spatial = self._masks(preds_S, preds_T)
        h, w = preds_T.shape[2:]
        return {'channel': channel, 'spatial': spatial.reshape(*spatial.shape[:2], h, w)}

    def loss_components(self, preds_S: torch.Tensor,
                        preds_T: torch.Tensor) -> dict[str, torch.Tensor]:
        """Unweighted terms: ``loss_channel`` (E7), ``loss_spatial`` (E8),
        ``loss_diversity`` (E9)."""
        feat_S, feat_T, channel, spatial = self._masks(preds_S, preds_T)
        c, h, w = feat_T.shape[1:]
        sq_err = (feat_T - feat_S).pow(2)  # (N, C, H, W)
        err_per_channel = sq_err.sum(dim=(2, 3))  # (N, C): sum over positions
        err_per_position = sq_err.sum(dim=1).flatten(1)  # (N, P): sum over channels

        mc = channel.detach() if self.detach_masks else channel
        ms = spatial.detach() if self.detach_masks else spatial
        mc2, ms2 = mc.pow(2), ms.pow(2)
        # the mask's size in the normaliser: its mass sum(M) as the paper writes it, or its
        # energy sum(M^2) (the same for 0/1 masks; invariant to the mask level, see class doc)
        norm_c = mc2.sum(-1) if self.mask_normalizer == 'energy' else mc.sum(-1)
        norm_s = ms2.sum(-1) if self.mask_normalizer == 'energy' else ms.sum(-1)
        # (E7) ||M^c_m (x) D||^2 = sum_k (M^c_{m,k})^2 sum_p D_kp^2
        loss_c = (mc2 * err_per_channel[:, None, :]).sum(-1) / (
            h * w * norm_c).clamp_min(_EPS)  # (N, M)
        # (E8) ||M^s_m (x) D||^2 = sum_p (M^s_{m,p})^2 sum_k D_kp^2
        loss_s = (ms2 * err_per_position[:, None, :]).sum(-1) / (
            c * norm_s).clamp_min(_EPS)  # (N, M)

        loss_div = sq_err.new_zeros(())
        if 'spatial' in self.diversity_masks:
            loss_div = loss_div + dice_diversity(spatial, self.diversity_reduction)
        if 'channel' in self.diversity_masks:
            loss_div = loss_div + dice_diversity(channel, self.diversity_reduction)
        return {
            'loss_channel': loss_c.mean(), 'loss_spatial': loss_s.mean(), 'loss_diversity': loss_div}

    def forward(self, preds_S: torch.Tensor, preds_T: torch.Tensor) -> torch.Tensor:
        """Args:
            preds_S: (N, C_S, H, W) student feature (or logits).
            preds_T: (N, C_T, H, W) teacher feature, same N, H, W; used as a target.

        Returns:
            Scalar loss, already multiplied by ``loss_weight``.
        """
        parts = self.loss_components(preds_S, preds_T)
        total = (self.channel_weight * parts['loss_channel'] +
                 self.spatial_weight * parts['loss_spatial'] +
                 self.diversity_weight * parts['loss_diversity'])
        return self.loss_weight * total
