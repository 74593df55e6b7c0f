"""Building blocks for decoder LLMs (transformers models) used by the multimodal methods."""
from .fsdp import LLMFullyShardedDataParallel, layer_names_wrap_policy
from .moe import (
    SparseMoEBlock,
    find_decoder_layers,
    load_balancing_loss,
    moe_blocks,
    moe_layer_indices,
    pop_moe_aux_loss,
    route_tokens,
    upcycle_to_moe,
)

__all__ = ['SparseMoEBlock', 'upcycle_to_moe', 'pop_moe_aux_loss', 'route_tokens',
           'load_balancing_loss', 'moe_layer_indices', 'find_decoder_layers', 'moe_blocks',
           'LLMFullyShardedDataParallel', 'layer_names_wrap_policy']
