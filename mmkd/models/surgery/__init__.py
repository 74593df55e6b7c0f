"""Method-specific changes to a model's structure: TinyCLIP's structured pruning
(hard-concrete masks, pruned structure, weight inheritance) and LLaVA-MoD's MoE upcycling."""
from .clip_inheritance import inherit_clip_weights
from .clip_structure import apply_structure, prune_clip, structure_of
from .hard_concrete import CLIPSparsityMasks, TowerMasks
from .moe_upcycling import (
    SparseMoEBlock,
    find_decoder_layers,
    load_balancing_loss,
    moe_blocks,
    moe_layer_indices,
    pop_moe_aux_loss,
    route_tokens,
    upcycle_to_moe,
)

__all__ = ['inherit_clip_weights', 'apply_structure', 'prune_clip', 'structure_of',
           'CLIPSparsityMasks', 'TowerMasks', 'SparseMoEBlock', 'upcycle_to_moe',
           'pop_moe_aux_loss', 'route_tokens', 'load_balancing_loss', 'moe_layer_indices',
           'find_decoder_layers', 'moe_blocks']
