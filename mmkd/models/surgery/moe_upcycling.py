"""Sparse mixture-of-experts upcycling of a decoder LLM (LLaVA-MoD's sparse student).

LLaVA-MoD (Shu et al., ICLR 2025, arXiv 2408.15881) turns the dense student's
feed-forward blocks into sparse MoE blocks: every expert starts as a copy of the
dense MLP, a linear router picks the top-k experts of each token and their outputs
are mixed with the router's renormalised probabilities. A load-balancing auxiliary
loss keeps the router from collapsing on one expert.

Settings of the official scripts (github shufangxun/LLaVA-MoD, ``shells/train/qwen``):
``NUM_EXPERTS=4``, ``TOP_K_EXPERTS=2``, ``MOE_MODE="sparse"`` (an MoE block on every
other decoder layer, indices 0, 2, 4, ...), ``ROUTER_AUX_LOSS_COEF=0.01`` with the
auxiliary losses of all MoE layers summed. The official code uses DeepSpeed's
``MoE`` layer (GShard/Switch top-2 gating, capacity factor 1.5, Gumbel noise on the
second choice while training). Here the block is dropless and deterministic
(Mixtral-style dispatch: no capacity, no noise), which is what makes the upcycled
model reproduce the dense model exactly at initialisation; the balance loss is the
Switch/GShard one (see :func:`load_balancing_loss`).

Only plain ``torch`` and the transformers modules already in the model are used;
nothing here imports transformers.
"""
from __future__ import annotations

import copy
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

LAYER_MODES = ('sparse', 'all', 'dense', 'first_half', 'second_half')
BALANCE_COUNTS = ('top1', 'topk')


def route_tokens(router_logits: torch.Tensor, top_k: int,
                 normalize: bool = True) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-k routing of tokens to experts.

    Args:
        router_logits (Tensor): (T, E) router scores of T tokens over E experts.
        top_k (int): experts per token.
        normalize (bool): renormalise the k selected probabilities to sum to 1
            (GShard/DeepSpeed top-2 and Mixtral do; with ``top_k=1`` Switch does not).

    Returns:
        tuple: ``probs`` (T, E) softmax over all experts (fp32), ``weights`` (T, k)
        mixing weights of the selected experts, ``indices`` (T, k) their ids, best first.
    """
    probs = F.softmax(router_logits.float(), dim=-1)
    weights, indices = torch.topk(probs, top_k, dim=-1)
    if normalize:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return probs, weights, indices


def load_balancing_loss(probs: torch.Tensor, indices: torch.Tensor, num_experts: int,
                        count: str = 'top1') -> torch.Tensor:
    r"""Switch/GShard load-balancing loss :math:`E\sum_i f_i P_i`.

    :math:`P_i` is the mean router probability of expert :math:`i` over the T tokens
    and :math:`f_i` the fraction of tokens dispatched to it. With ``count='top1'``
    (Switch; GShard and DeepSpeed's top-2 gating, hence the official LLaVA-MoD code)
    only each token's first choice counts, so :math:`\sum_i f_i = 1` and a perfectly
    balanced router gives 1. With ``count='topk'`` (Mixtral in transformers) every
    selected slot counts, :math:`f_i = c_i / T`, and the balanced value is k.

    Args:
        probs (Tensor): (T, E) router probabilities.
        indices (Tensor): (T, k) selected experts, best first.
        num_experts (int): E.
        count (str): 'top1' or 'topk'.
    """
    if count not in BALANCE_COUNTS:
        raise ValueError(f'balance_count={count!r} is not valid; valid: {list(BALANCE_COUNTS)}')
    chosen = indices[:, :1] if count == 'top1' else indices
    one_hot = F.one_hot(chosen, num_experts).to(probs.dtype).sum(dim=1)  # (T, E)
    fraction = one_hot.mean(dim=0)
    mean_prob = probs.mean(dim=0)
    return num_experts * (fraction * mean_prob).sum()


class SparseMoEBlock(nn.Module):
    """Drop-in replacement of a decoder MLP by E experts and a top-k router.

    ``forward(x)`` keeps the MLP's signature: (..., H) -> (..., H). In training mode
    the unweighted balance loss is added to ``self.aux_loss`` (a tensor in the
    autograd graph) until :func:`pop_moe_aux_loss` collects it, so a training step
    with several student forwards (chosen and rejected responses) adds them all.
    Call :func:`pop_moe_aux_loss` once *before* a step's first forward too: activation
    checkpointing re-runs the forward during backward and would otherwise leave a
    stale value behind. Use non-reentrant checkpointing (``use_reentrant=False``):
    the reentrant variant runs the forward under ``no_grad``, so the balance loss
    would carry no gradient to the router.

    Args:
        experts (Sequence[nn.Module]): the experts (each (..., H) -> (..., H)).
        hidden_size (int): H, the router's input width.
        top_k (int): experts per token (1 <= top_k <= E).
        normalize_weights (bool): renormalise the top-k probabilities.
        balance_count (str): 'top1' or 'topk', see :func:`load_balancing_loss`.
        router_init_std (float): std of the router's normal initialisation.
    """

    def __init__(self, experts: Sequence[nn.Module], hidden_size: int, top_k: int = 2,
                 normalize_weights: bool = True, balance_count: str = 'top1',
                 router_init_std: float = 0.02) -> None:
        super().__init__()
        num_experts = len(experts)
        if num_experts < 1:
            raise ValueError('num_experts must be >= 1')
        if not 1 <= top_k <= num_experts:
            raise ValueError(f'top_k={top_k} must be in [1, num_experts={num_experts}]')
        if balance_count not in BALANCE_COUNTS:
            raise ValueError(f'balance_count={balance_count!r} is not valid; valid: {list(BALANCE_COUNTS)}')
        self.num_experts, self.top_k = num_experts, top_k
        self.normalize_weights, self.balance_count = normalize_weights, balance_count
        self.experts = nn.ModuleList(experts)
        self.router = nn.Linear(hidden_size, num_experts, bias=False)
        nn.init.normal_(self.router.weight, std=router_init_std)
        self.aux_loss: Optional[torch.Tensor] = None

    @classmethod
    def from_dense(cls, mlp: nn.Module, num_experts: int, hidden_size: int, **kwargs) -> 'SparseMoEBlock':
        """Upcycle: E deep copies of ``mlp`` (same weights, independent parameters)."""
        experts = [copy.deepcopy(mlp) for _ in range(num_experts)]
        block = cls(experts, hidden_size, **kwargs)
        ref = next(mlp.parameters(), None)
        if ref is not None:  # the router follows the MLP's device, dtype and trainability
            block.router.to(device=ref.device, dtype=ref.dtype)
            block.router.requires_grad_(ref.requires_grad)
        return block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        tokens = x.reshape(-1, shape[-1])
        # The router runs in fp32 (as DeepSpeed's gate does) whatever the model's dtype.
        logits = F.linear(tokens.float(), self.router.weight.float())
        probs, weights, indices = route_tokens(logits, self.top_k, self.normalize_weights)
        if self.training:  # the balance loss is a training signal only
            aux = load_balancing_loss(probs, indices, self.num_experts, self.balance_count)
            self.aux_loss = aux if self.aux_loss is None else self.aux_loss + aux

        out = torch.zeros_like(tokens)
        for e, expert in enumerate(self.experts):
            token_ids, slot = torch.nonzero(indices == e, as_tuple=True)
            if token_ids.numel() == 0:
                # Touch the expert so every parameter takes part in the graph (DDP/FSDP
                # expect it); the contribution is exactly zero.
                out = out + 0.0 * expert(tokens[:1]).sum()
                continue
            y = expert(tokens[token_ids]) * weights[token_ids, slot].unsqueeze(-1).to(tokens.dtype)
            out = out.index_add(0, token_ids, y)
        return out.reshape(shape)

    def extra_repr(self) -> str:
        return f'num_experts={self.num_experts}, top_k={self.top_k}, balance_count={self.balance_count!r}'


def moe_layer_indices(num_layers: int, layers: Union[str, Iterable[int]] = 'sparse') -> List[int]:
    """Decoder layers that get an MoE block.

    'sparse' (LLaVA-MoD/MoE-LLaVA's default in the official scripts): every other
    layer, 0, 2, 4, ...; 'all' (or 'dense'): every layer; 'first_half', 'second_half';
    or an explicit list of indices.
    """
    if isinstance(layers, str):
        if layers == 'sparse':
            return list(range(0, num_layers, 2))
        if layers in ('all', 'dense'):
            return list(range(num_layers))
        if layers == 'first_half':
            return list(range(num_layers // 2))
        if layers == 'second_half':
            return list(range(num_layers // 2, num_layers))
        raise ValueError(f'moe layers={layers!r} is not valid; valid: {list(LAYER_MODES)} or a list '
                         f'of layer indices in [0, {num_layers})')
    idx = sorted({int(i) for i in layers})
    bad = [i for i in idx if not 0 <= i < num_layers]
    if bad or not idx:
        raise ValueError(f'moe layers={list(layers)!r}: indices must be in [0, {num_layers}) and '
                         f'not empty (bad: {bad})')
    return idx


def _is_gated_mlp(module: nn.Module) -> bool:
    return all(hasattr(module, n) for n in ('gate_proj', 'up_proj', 'down_proj'))


def find_decoder_layers(model: nn.Module, decoder_layers: Optional[str] = None) -> Tuple[str, nn.ModuleList]:
    """The ModuleList of the LLM's decoder layers (each with a gated ``.mlp``).

    With ``decoder_layers=None`` the model is searched for the one ModuleList whose
    layers have a Qwen2/LLaMA-style gated MLP (``gate_proj``/``up_proj``/``down_proj``),
    which leaves a CLIP/SigLIP vision tower (``fc1``/``fc2`` MLPs) alone.
    """
    if decoder_layers is not None:
        try:
            layers = model.get_submodule(decoder_layers)
        except AttributeError as err:
            raise ValueError(f'decoder_layers={decoder_layers!r} is not a submodule of the model') from err
        if not isinstance(layers, nn.ModuleList) or not all(hasattr(m, 'mlp') for m in layers):
            raise ValueError(f'decoder_layers={decoder_layers!r} is not a ModuleList of layers with `.mlp`')
        return decoder_layers, layers
    found = [(name, m) for name, m in model.named_modules()
             if isinstance(m, nn.ModuleList) and len(m) > 0
             and all(_is_gated_mlp(getattr(layer, 'mlp', None) or nn.Module()) or
                     isinstance(getattr(layer, 'mlp', None), SparseMoEBlock) for layer in m)]
    if len(found) != 1:
        raise ValueError(
            'could not find exactly one list of decoder layers with gated MLPs '
            f'(found {[n for n, _ in found]}); pass decoder_layers=\'path.to.layers\'')
    return found[0]


def upcycle_to_moe(model: nn.Module, num_experts: int = 4, top_k: int = 2,
                   layers: Union[str, Iterable[int]] = 'sparse', decoder_layers: Optional[str] = None,
                   hidden_size: Optional[int] = None, **block_kwargs) -> List[int]:
    """Replace the dense MLPs of the chosen decoder layers by :class:`SparseMoEBlock` s.

    Every expert is a copy of the layer's dense MLP, so at initialisation the model
    computes exactly what the dense model did (the renormalised top-k weights sum to
    one). Works in place on a transformers Qwen2/LLaMA causal LM, on the LLM inside a
    ``LlavaForConditionalGeneration`` or on any model whose decoder layers hold a gated
    ``.mlp``.

    Args:
        model (nn.Module): the model to modify in place.
        num_experts (int): E (official: 4).
        top_k (int): experts per token (official: 2).
        layers (str | list[int]): see :func:`moe_layer_indices` (official: 'sparse').
        decoder_layers (str, optional): module path of the decoder layer list.
        hidden_size (int, optional): router input width; read from the MLP otherwise.
        **block_kwargs: ``normalize_weights``, ``balance_count``, ``router_init_std``.

    Returns:
        list[int]: the decoder layer indices that now hold an MoE block.
    """
    if int(num_experts) < 1:
        raise ValueError(f'num_experts={num_experts} must be >= 1')
    _, layer_list = find_decoder_layers(model, decoder_layers)
    indices = moe_layer_indices(len(layer_list), layers)
    for i in indices:
        mlp = layer_list[i].mlp
        if isinstance(mlp, SparseMoEBlock):
            raise ValueError(f'decoder layer {i} already holds an MoE block (upcycled twice?)')
        width = hidden_size or getattr(mlp, 'hidden_size', None) or mlp.gate_proj.in_features
        layer_list[i].mlp = SparseMoEBlock.from_dense(mlp, num_experts, width, top_k=top_k, **block_kwargs)
    return indices


def moe_blocks(model: nn.Module) -> List[SparseMoEBlock]:
    return [m for m in model.modules() if isinstance(m, SparseMoEBlock)]


def pop_moe_aux_loss(model: nn.Module) -> Optional[torch.Tensor]:
    """Sum (over MoE layers) of the balance losses stored since the last call; resets them.

    Returns None when the model has no MoE block or none ran. The official code also
    sums over layers and multiplies by ``router_aux_loss_coef``; the caller applies it.
    """
    total = None
    for block in moe_blocks(model):
        if block.aux_loss is not None:
            total = block.aux_loss if total is None else total + block.aux_loss
            block.aux_loss = None
    return total
