"""TinyCLIP's manual weight inheritance for open_clip ``CLIP`` models.

TinyCLIP (Wu et al., ICCV 2023, Sec. 3.2, "manual inheritance"; released code
``weight_inherit.py``) initialises a smaller student of the same family from the
teacher's weights:

* **Depth**: the student's layer ``i`` takes the teacher's layer ``i * step`` with
  ``step = L_teacher // L_student`` (layers 0, step, 2*step, ...), per tower.
* **Width**: every tensor keeps the front slice along each dimension (the first
  hidden dims, the first MLP units, the first ``heads`` heads: the packed q/k/v
  projection is sliced head-wise, the head size is kept).
* Everything else (embeddings, norms, projections, logit scale) is front-sliced too.

TinyCLIP's ViT-B/32 -> ViT-61M/32 student reduces the image tower's width
(768 -> 640) and the text tower's depth (12 -> 9 layers), its second stage
ViT-40M/32 again (640 -> 512; 9 -> 6 layers, teacher layers 0, 2, ..., 10 of the
original).
"""
from __future__ import annotations

import re
from typing import Dict

import torch
from torch import nn

from .clip_structure import check_supported, layer_indices, structure_of

_BLOCK = re.compile(r'^(visual\.transformer\.resblocks|transformer\.resblocks)\.(\d+)\.(.+)$')


def _source_name(name: str, maps: Dict[str, list]) -> str:
    match = _BLOCK.match(name)
    if match is None:
        return name
    prefix, idx, rest = match.groups()
    return f'{prefix}.{maps[prefix][int(idx)]}.{rest}'


def _front(tensor: torch.Tensor, shape, name: str) -> torch.Tensor:
    if tensor.dim() != len(shape) or any(s > t for s, t in zip(shape, tensor.shape)):
        raise ValueError(f'weight inheritance: {name} of the student has shape {tuple(shape)}, '
                         f'larger than (or of another rank than) the source {tuple(tensor.shape)}; '
                         'the student must be no wider and no deeper than the source')
    return tensor[tuple(slice(0, s) for s in shape)]


@torch.no_grad()
def inherit_clip_weights(student: nn.Module, source: nn.Module) -> Dict[str, object]:
    """Copy front slices of ``source``'s weights into ``student`` (in place).

    Args:
        student: an open_clip ``CLIP``, no wider/deeper than ``source`` in every
            dimension, with the same head size, vision patch grid and vocabulary.
        source: the model to inherit from (the teacher, or the previous stage's
            student in a progressive chain).

    Returns:
        dict: ``layers`` (tower -> source layer of each student layer) and
        ``params`` (student / source parameter counts).
    """
    check_supported(student, 'weight inheritance (student)')
    check_supported(source, 'weight inheritance (source)')
    s_struct, t_struct = structure_of(student), structure_of(source)
    for tower in ('visual', 'text'):
        if s_struct[tower]['head_dim'] != t_struct[tower]['head_dim']:
            raise ValueError(f'weight inheritance keeps the head size: the student {tower} tower '
                             f'has head_dim {s_struct[tower]["head_dim"]}, the source '
                             f'{t_struct[tower]["head_dim"]}; choose heads = width // '
                             f'{t_struct[tower]["head_dim"]}')
        if len(s_struct[tower]['heads']) > len(t_struct[tower]['heads']):
            raise ValueError(f'weight inheritance: the student {tower} tower has '
                             f'{len(s_struct[tower]["heads"])} layers, the source '
                             f'{len(t_struct[tower]["heads"])}; the student must be no wider and '
                             'no deeper than the source')
    if student.visual.positional_embedding.shape[0] != source.visual.positional_embedding.shape[0]:
        raise ValueError('weight inheritance: student and source see different numbers of image '
                         f'patches ({student.visual.positional_embedding.shape[0] - 1} vs '
                         f'{source.visual.positional_embedding.shape[0] - 1}); keep image_size and '
                         'patch_size')
    if student.token_embedding.num_embeddings != source.token_embedding.num_embeddings:
        raise ValueError('weight inheritance: student and source need the same vocabulary '
                         f'(vocab_size {student.token_embedding.num_embeddings} vs '
                         f'{source.token_embedding.num_embeddings})')
    maps = {
        'visual.transformer.resblocks': layer_indices(len(t_struct['visual']['heads']),
                                                      len(s_struct['visual']['heads'])),
        'transformer.resblocks': layer_indices(len(t_struct['text']['heads']),
                                               len(s_struct['text']['heads'])),
    }
    src = source.state_dict()
    new = {}
    for name, value in student.state_dict().items():
        src_name = _source_name(name, maps)
        if src_name not in src:
            raise KeyError(f'weight inheritance: the source has no {src_name!r} (for the student\'s '
                           f'{name!r})')
        weight = src[src_name]
        if name.endswith('attn.in_proj_weight') or name.endswith('attn.in_proj_bias'):
            blk = _module(student, name)
            src_blk = _module(source, src_name)
            hd = int(src_blk.head_dim)
            packed = weight.view(3, src_blk.num_heads, hd, *weight.shape[1:])
            packed = packed[:, :blk.num_heads]
            if weight.dim() == 2:
                packed = packed[..., :value.shape[1]]
            weight = packed.reshape(value.shape)
        elif name.endswith('attn.out_proj.weight'):
            weight = _front(weight, value.shape, name)  # front heads = front columns
        else:
            weight = _front(weight, value.shape, name)
        new[name] = weight.clone().to(value.dtype)
    student.load_state_dict(new, strict=True)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    return dict(layers={'visual': maps['visual.transformer.resblocks'],
                        'text': maps['transformer.resblocks']},
                params=(count(student), count(source)))


def _module(model: nn.Module, param_name: str) -> nn.Module:
    return model.get_submodule(param_name.rsplit('.', 1)[0])

