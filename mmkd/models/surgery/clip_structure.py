"""Structure surgery on open_clip ``CLIP`` models: masked forward and structural pruning.

Used by TinyCLIP's automatic weight inheritance (:mod:`.hard_concrete`):

* :func:`encode_image_masked` / :func:`encode_text_masked` run open_clip's forward
  with masks on hidden dims (multiplied into the embeddings and into every residual
  branch output; layer norms normalise over the kept dims only), attention heads
  (multiplied into each head's output) and MLP units (multiplied after the
  activation). Without masks they compute exactly open_clip's forward.
* :func:`prune_clip` folds given masks into the weights and removes every unit whose
  mask is 0: the result is a smaller, dense ``CLIP`` whose forward equals the masked
  forward with those masks (so all-ones masks change nothing).
* :func:`structure_of` / :func:`apply_structure` describe and rebuild the (possibly
  non-uniform) structure of a pruned model, so a config can build it again.

A pruned layer may keep any number of heads (of the original head size), which
``nn.MultiheadAttention`` cannot express when heads x head_dim differs from the
width; pruned blocks use :class:`PrunedMultiheadAttention`, a drop-in with the same
call signature and parameter names.

Supported: open_clip ``CLIP`` with a ``VisionTransformer`` image tower (class-token
pooling, no attentional pooler) and the built-in causal text transformer (argmax
pooling), default residual blocks. :func:`check_supported` names what is not.
"""
from __future__ import annotations

import copy
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

Masks = Optional[Dict[str, object]]


class PrunedMultiheadAttention(nn.Module):
    """Self-attention with ``num_heads`` heads of ``head_dim`` on a ``embed_dim`` stream.

    Same parameter names as ``nn.MultiheadAttention`` (``in_proj_weight`` of shape
    (3 * num_heads * head_dim, embed_dim), ``in_proj_bias``, ``out_proj``) and the
    same call (``attn(q, k, v, need_weights=False, attn_mask=None)[0]``,
    batch-first), but ``num_heads * head_dim`` need not equal ``embed_dim``.
    """

    batch_first = True

    def __init__(self, embed_dim: int, num_heads: int, head_dim: int) -> None:
        super().__init__()
        if num_heads < 1:
            raise ValueError(f'PrunedMultiheadAttention needs num_heads >= 1, got {num_heads}')
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, head_dim
        inner = num_heads * head_dim
        self.in_proj_weight = nn.Parameter(torch.empty(3 * inner, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * inner))
        self.out_proj = nn.Linear(inner, embed_dim)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, query, key=None, value=None, need_weights: bool = False,
                attn_mask: Optional[torch.Tensor] = None):
        if key is not None and key is not query or value is not None and value is not query:
            raise NotImplementedError('PrunedMultiheadAttention supports self-attention only')
        return attention(self, query, attn_mask, None), None


def attention(attn: nn.Module, x: torch.Tensor, attn_mask: Optional[torch.Tensor],
              head_mask: Optional[torch.Tensor]) -> torch.Tensor:
    """Batch-first multi-head self-attention with an optional per-head output mask."""
    n, length, _ = x.shape
    heads, head_dim = attn.num_heads, attn.head_dim
    qkv = F.linear(x, attn.in_proj_weight, attn.in_proj_bias)
    q, k, v = qkv.view(n, length, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (n, H, L, hd)
    if head_mask is not None:
        out = out * head_mask.view(1, heads, 1, 1).to(out.dtype)
    return attn.out_proj(out.transpose(1, 2).reshape(n, length, heads * head_dim))


def masked_norm(norm: nn.Module, x: torch.Tensor, hidden: Optional[torch.Tensor]) -> torch.Tensor:
    """LayerNorm over the kept hidden dims only; pruned dims are 0."""
    if hidden is None:
        return norm(x)
    keep = torch.nonzero(hidden, as_tuple=True)[0]
    out = x.new_zeros(x.shape)
    out[..., keep] = F.layer_norm(x[..., keep], (keep.numel(), ), norm.weight[keep],
                                  norm.bias[keep], norm.eps)
    return out


def _scale(x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    return x if mask is None else x * mask.to(x.dtype)


def _block(blk: nn.Module, x: torch.Tensor, attn_mask, hidden, head_mask, mlp_mask) -> torch.Tensor:
    h = attention(blk.attn, masked_norm(blk.ln_1, x, hidden), attn_mask, head_mask)
    x = x + blk.ls_1(_scale(h, hidden))
    h = blk.mlp.gelu(blk.mlp.c_fc(masked_norm(blk.ln_2, x, hidden)))
    h = blk.mlp.c_proj(_scale(h, mlp_mask))
    return x + blk.ls_2(_scale(h, hidden))


def _tower_masks(masks: Masks, num_layers: int):
    masks = masks or {}
    hidden = masks.get('hidden')
    heads = masks.get('heads') or [None] * num_layers
    mlp = masks.get('mlp') or [None] * num_layers
    return hidden, heads, mlp


def encode_image_masked(clip: nn.Module, image: torch.Tensor, masks: Masks = None) -> torch.Tensor:
    """``clip.encode_image(image)`` (unnormalised) with the vision tower's masks."""
    visual = clip.visual
    hidden, heads, mlp = _tower_masks(masks, len(visual.transformer.resblocks))
    x = visual.conv1(image)
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
    cls = visual.class_embedding.to(x.dtype).view(1, 1, -1).expand(x.shape[0], -1, -1)
    x = torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype)
    x = visual.patch_dropout(x)
    x = _scale(x, hidden)
    x = masked_norm(visual.ln_pre, x, hidden)
    for i, blk in enumerate(visual.transformer.resblocks):
        x = _block(blk, x, None, hidden, heads[i], mlp[i])
    pooled = masked_norm(visual.ln_post, x[:, 0], hidden)
    return pooled @ visual.proj


def encode_text_masked(clip: nn.Module, text: torch.Tensor, masks: Masks = None) -> torch.Tensor:
    """``clip.encode_text(text)`` (unnormalised) with the text tower's masks."""
    hidden, heads, mlp = _tower_masks(masks, len(clip.transformer.resblocks))
    x = clip.token_embedding(text) + clip.positional_embedding[:text.shape[1]]
    x = _scale(x, hidden)
    attn_mask = clip.attn_mask
    if attn_mask is not None:
        attn_mask = attn_mask[:text.shape[1], :text.shape[1]].to(x.dtype)
    for i, blk in enumerate(clip.transformer.resblocks):
        x = _block(blk, x, attn_mask, hidden, heads[i], mlp[i])
    x = masked_norm(clip.ln_final, x, hidden)
    pooled = x[torch.arange(x.shape[0], device=x.device), text.argmax(dim=-1)]
    return pooled @ clip.text_projection


def check_supported(clip: nn.Module, what: str = 'this operation') -> None:
    """Raise if ``clip`` is not a structure this module can mask, prune or inherit."""
    from open_clip.model import CLIP
    from open_clip.transformer import ResidualAttentionBlock, VisionTransformer
    problems = []
    if not isinstance(clip, CLIP):
        problems.append(f'the model is a {type(clip).__name__}, not open_clip.model.CLIP '
                        '(CustomTextCLIP/CoCa/HF text towers are not supported)')
    else:
        visual = clip.visual
        if not isinstance(visual, VisionTransformer):
            problems.append(f'the image tower is a {type(visual).__name__}, not a VisionTransformer')
        else:
            if visual.attn_pool is not None:
                problems.append('the image tower has an attentional pooler')
            if visual.pool_type != 'tok' or visual.final_ln_after_pool:
                problems.append(f"image pooling is {visual.pool_type!r} (only 'tok' with ln before pool)")
            if isinstance(visual.proj, nn.Linear) or visual.proj is None:
                problems.append('the image projection is not a plain matrix')
        if getattr(clip, 'text_pool_type', 'argmax') != 'argmax':
            problems.append(f'text pooling is {clip.text_pool_type!r} (only argmax)')
        if not isinstance(clip.text_projection, nn.Parameter):
            problems.append('the text projection is not a plain matrix')
        towers = [('visual', visual.transformer.resblocks)] if isinstance(visual, VisionTransformer) else []
        towers.append(('text', clip.transformer.resblocks))
        for name, blocks in towers:
            for i, blk in enumerate(blocks):
                if not isinstance(blk, ResidualAttentionBlock) or hasattr(blk, 'ln_1_kv'):
                    problems.append(f'{name} block {i} is a {type(blk).__name__} (only default '
                                    'ResidualAttentionBlock)')
                    break
                if not getattr(blk.attn, 'batch_first', False):
                    problems.append(f'{name} block {i} attention is not batch-first')
                    break
    if problems:
        raise NotImplementedError(f'{what} supports open_clip CLIP ViT models only: '
                                  + '; '.join(problems))


# ----------------------------------------------------------------------- structure
def _tower(clip: nn.Module, name: str):
    """(blocks, norms, width) of a tower."""
    if name == 'visual':
        return clip.visual.transformer.resblocks
    return clip.transformer.resblocks


def _head_dim(attn: nn.Module) -> int:
    return int(attn.head_dim)


def structure_of(clip: nn.Module) -> Dict[str, dict]:
    """``{tower: dict(width, heads=[per layer], head_dim, mlp=[per layer])}``."""
    out = {}
    for name in ('visual', 'text'):
        blocks = _tower(clip, name)
        width = blocks[0].ln_1.weight.shape[0] if len(blocks) else (
            clip.visual.conv1.out_channels if name == 'visual' else clip.token_embedding.embedding_dim)
        out[name] = dict(width=int(width),
                         heads=[int(b.attn.num_heads) for b in blocks],
                         head_dim=_head_dim(blocks[0].attn) if len(blocks) else 0,
                         mlp=[int(b.mlp.c_fc.out_features) for b in blocks])
    return out


def _keep(mask: Optional[torch.Tensor], size: int, device) -> torch.Tensor:
    """Indices of nonzero entries; at least one (a fully pruned group keeps its best unit
    with its zero mask folded in, which reproduces the masked output exactly)."""
    if mask is None:
        return torch.arange(size, device=device)
    keep = torch.nonzero(mask, as_tuple=True)[0]
    if keep.numel() == 0:
        keep = torch.zeros(1, dtype=torch.long, device=mask.device)
    return keep


def _ones(mask: Optional[torch.Tensor], size: int, ref: torch.Tensor) -> torch.Tensor:
    return torch.ones(size, dtype=ref.dtype, device=ref.device) if mask is None else mask.to(ref)


def _new_norm(norm: nn.Module, keep: torch.Tensor) -> nn.Module:
    new = type(norm)(keep.numel(), eps=norm.eps)
    new.weight.data.copy_(norm.weight.data[keep])
    new.bias.data.copy_(norm.bias.data[keep])
    return new


def _prune_ls(ls: nn.Module, keep: torch.Tensor) -> nn.Module:
    if hasattr(ls, 'gamma'):
        ls.gamma = nn.Parameter(ls.gamma.data[keep].clone())
    return ls


@torch.no_grad()
def _prune_block(blk: nn.Module, keep_d: torch.Tensor, hid: torch.Tensor,
                 head_mask: Optional[torch.Tensor], mlp_mask: Optional[torch.Tensor]) -> None:
    attn = blk.attn
    heads, hd = attn.num_heads, _head_dim(attn)
    width = attn.out_proj.out_features
    keep_h = _keep(head_mask, heads, hid.device)
    hm = _ones(head_mask, heads, hid)
    w_in = attn.in_proj_weight.data.view(3, heads, hd, -1)[:, keep_h][..., keep_d]
    new_attn = PrunedMultiheadAttention(keep_d.numel(), keep_h.numel(), hd)
    new_attn.in_proj_weight.data.copy_(w_in.reshape(-1, keep_d.numel()))
    if attn.in_proj_bias is not None:
        new_attn.in_proj_bias.data.copy_(attn.in_proj_bias.data.view(3, heads, hd)[:, keep_h].reshape(-1))
    else:
        new_attn.in_proj_bias.data.zero_()
    w_out = (attn.out_proj.weight.data * hid.view(-1, 1)).view(width, heads, hd) * hm.view(1, -1, 1)
    new_attn.out_proj.weight.data.copy_(w_out[keep_d][:, keep_h].reshape(keep_d.numel(), -1))
    b_out = attn.out_proj.bias.data if attn.out_proj.bias is not None else torch.zeros_like(hid)
    new_attn.out_proj.bias.data.copy_((b_out * hid)[keep_d])
    new_attn.to(attn.in_proj_weight.device, attn.in_proj_weight.dtype)
    blk.attn = new_attn
    blk.ln_1 = _new_norm(blk.ln_1, keep_d)
    blk.ln_2 = _new_norm(blk.ln_2, keep_d)
    blk.ls_1, blk.ls_2 = _prune_ls(blk.ls_1, keep_d), _prune_ls(blk.ls_2, keep_d)

    fc, proj = blk.mlp.c_fc, blk.mlp.c_proj
    keep_m = _keep(mlp_mask, fc.out_features, hid.device)
    mm = _ones(mlp_mask, fc.out_features, hid)
    new_fc = nn.Linear(keep_d.numel(), keep_m.numel()).to(fc.weight)
    new_fc.weight.data.copy_(fc.weight.data[keep_m][:, keep_d])
    new_fc.bias.data.copy_(fc.bias.data[keep_m])
    new_proj = nn.Linear(keep_m.numel(), keep_d.numel()).to(proj.weight)
    new_proj.weight.data.copy_((proj.weight.data * hid.view(-1, 1) * mm.view(1, -1))[keep_d][:, keep_m])
    new_proj.bias.data.copy_((proj.bias.data * hid)[keep_d])
    blk.mlp.c_fc, blk.mlp.c_proj = new_fc, new_proj


@torch.no_grad()
def prune_clip(clip: nn.Module, masks: Dict[str, Masks]) -> nn.Module:
    """A pruned copy of ``clip`` whose forward equals the masked forward with ``masks``.

    Args:
        clip: an open_clip ``CLIP`` (see :func:`check_supported`).
        masks: ``{'visual': {...}, 'text': {...}}`` as produced by
            :class:`~.hard_concrete.CLIPSparsityMasks` (a missing tower or mask means
            keep everything). Mask values are folded into the weights; zeros are
            removed.
    """
    check_supported(clip, 'prune_clip')
    clip = copy.deepcopy(clip)
    for name in ('visual', 'text'):
        blocks = _tower(clip, name)
        hidden, heads, mlp = _tower_masks((masks or {}).get(name), len(blocks))
        ref = clip.visual.proj if name == 'visual' else clip.text_projection
        width = ref.shape[0]
        keep_d = _keep(hidden, width, ref.device)
        hid = _ones(hidden, width, ref)
        for i, blk in enumerate(blocks):
            _prune_block(blk, keep_d, hid, heads[i], mlp[i])
        if name == 'visual':
            v = clip.visual
            conv = v.conv1
            new_conv = nn.Conv2d(conv.in_channels, keep_d.numel(), conv.kernel_size, conv.stride,
                                 bias=False).to(conv.weight)
            new_conv.weight.data.copy_((conv.weight.data * hid.view(-1, 1, 1, 1))[keep_d])
            v.conv1 = new_conv
            v.class_embedding = nn.Parameter((v.class_embedding.data * hid)[keep_d].clone())
            v.positional_embedding = nn.Parameter(
                (v.positional_embedding.data * hid.view(1, -1))[:, keep_d].clone())
            if not isinstance(v.ln_pre, nn.Identity):
                v.ln_pre = _new_norm(v.ln_pre, keep_d)
            v.ln_post = _new_norm(v.ln_post, keep_d)
            v.proj = nn.Parameter(v.proj.data[keep_d].clone())
            v.transformer.width = keep_d.numel()
        else:
            emb = clip.token_embedding
            new_emb = nn.Embedding(emb.num_embeddings, keep_d.numel()).to(emb.weight)
            new_emb.weight.data.copy_((emb.weight.data * hid.view(1, -1))[:, keep_d])
            clip.token_embedding = new_emb
            clip.positional_embedding = nn.Parameter(
                (clip.positional_embedding.data * hid.view(1, -1))[:, keep_d].clone())
            clip.ln_final = _new_norm(clip.ln_final, keep_d)
            clip.text_projection = nn.Parameter(clip.text_projection.data[keep_d].clone())
            clip.transformer.width = keep_d.numel()
    return clip


def _front_masks(struct: dict, full: dict) -> dict:
    def front(n, total):
        m = torch.zeros(total)
        m[:n] = 1.0
        return m
    return dict(hidden=front(struct['width'], full['width']),
                heads=[front(h, hf) for h, hf in zip(struct['heads'], full['heads'])],
                mlp=[front(m, mf) for m, mf in zip(struct['mlp'], full['mlp'])])


def apply_structure(clip: nn.Module, structure: Dict[str, dict], key: str = 'pruned_structure') -> nn.Module:
    """Resize ``clip`` (built from its full config) to a pruned ``structure``.

    Weights are placeholders (front slices); load the pruned checkpoint afterwards.
    """
    check_supported(clip, key)
    full = structure_of(clip)
    masks = {}
    for name, struct in structure.items():
        if name not in full:
            raise KeyError(f'{key}: unknown tower {name!r}; valid: {sorted(full)}')
        f = full[name]
        fields = {'width', 'heads', 'head_dim', 'mlp'}
        if set(struct) != fields:
            raise KeyError(f'{key}.{name} must have exactly the keys {sorted(fields)}, got {sorted(struct)}')
        if struct['head_dim'] != f['head_dim'] or len(struct['heads']) != len(f['heads']) \
                or len(struct['mlp']) != len(f['mlp']):
            raise ValueError(f'{key}.{name}: head_dim and the number of layers must match the '
                             f'model config (head_dim {f["head_dim"]}, {len(f["heads"])} layers), got '
                             f'head_dim {struct["head_dim"]}, {len(struct["heads"])} layers')
        too_big = struct['width'] > f['width'] or any(a > b for a, b in zip(struct['heads'], f['heads'])) \
            or any(a > b for a, b in zip(struct['mlp'], f['mlp']))
        if too_big:
            raise ValueError(f'{key}.{name}={struct} exceeds the model config {f}')
        masks[name] = _front_masks(struct, f)
    return prune_clip(clip, masks)


def layer_indices(num_source: int, num_target: int) -> List[int]:
    """TinyCLIP's uniform layer choice: every ``num_source // num_target``-th layer from 0."""
    if not 1 <= num_target <= num_source:
        raise ValueError(f'cannot keep {num_target} of {num_source} layers')
    step = num_source // num_target
    return list(range(0, num_target * step, step))
