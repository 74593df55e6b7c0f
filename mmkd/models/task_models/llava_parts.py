"""LLaVA's three parts in one module layout on every transformers version.

transformers 4.52 rebuilt ``LlavaForConditionalGeneration``: the vision tower, the
projector and the decoder moved under ``model.`` and the decoder lost its LM head
(``model.language_model`` is a ``Qwen2Model``, the head is ``lm_head``); 5.0 also
dropped the ``vision_model.`` level of ``CLIPVisionModel`` / ``SiglipVisionModel``.
mmkd's recorders, trainable-part selection, pretrained loading and checkpoints name
modules by path, so :class:`LlavaParts` keeps one layout whatever the version:

* ``vision_tower``: the vision model (``AutoModel`` of the vision config),
* ``multi_modal_projector``: transformers' ``LlavaMultiModalProjector``,
* ``language_model``: the causal LM (``AutoModelForCausalLM``: ``.model.layers``,
  ``.lm_head``), i.e. the layout of the LLaVA-1.5 checkpoints and of transformers
  <= 4.51.

Its forward is LLaVA's: the vision tower's hidden states at ``vision_feature_layer``
(without the first token for ``vision_feature_select_strategy='default'``) go through
the projector and replace the embeddings of the ``<image>`` tokens; the causal LM runs on
the result. Weights in the layouts of transformers >= 4.52 (``model.vision_tower.``,
``model.language_model.``, ``lm_head.``) and with or without ``vision_model.`` load into
it (:func:`to_parts_layout`, applied by ``load_state_dict`` too).
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Dict, Optional

import torch
from torch import nn

# transformers' two state-dict layouts of LlavaForConditionalGeneration: the prefixes of
# the vision tower, the projector, the decoder (a causal LM's ``model.``) and the LM head.
# LlavaParts has the first on every version.
LLAVA_LAYOUTS = {
    'transformers<=4.51': dict(vision_tower='vision_tower.', projector='multi_modal_projector.',
                               decoder='language_model.model.', lm_head='language_model.lm_head.'),
    'transformers>=4.52': dict(vision_tower='model.vision_tower.',
                               projector='model.multi_modal_projector.',
                               decoder='model.language_model.', lm_head='lm_head.'),
}
PARTS_LAYOUT = LLAVA_LAYOUTS['transformers<=4.51']
# any other layout -> LlavaParts, longest prefixes first ('model.language_model.' before
# 'model.'); prefixes that are already LlavaParts' are left alone
_TO_PARTS = sorted(((prefix, PARTS_LAYOUT[part]) for layout in LLAVA_LAYOUTS.values()
                    for part, prefix in layout.items() if prefix != PARTS_LAYOUT[part]),
                   key=lambda kv: -len(kv[0]))


def vision_layout(state: Dict[str, torch.Tensor], tower: nn.Module,
                  prefix: str = '') -> Dict[str, torch.Tensor]:
    """Add or drop the ``vision_model.`` level of the keys under ``prefix`` so that they
    match ``tower`` (CLIP / SigLIP vision models have it up to transformers 4.x)."""
    has_level = hasattr(tower, 'vision_model')
    level = prefix + 'vision_model.'
    out = {}
    for key, value in state.items():
        if key.startswith(prefix):
            if has_level and not key.startswith(level):
                key = level + key[len(prefix):]
            elif not has_level and key.startswith(level):
                key = prefix + key[len(level):]
        out[key] = value
    return out


def to_parts_layout(state: Dict[str, torch.Tensor], parts: 'LlavaParts',
                    prefix: str = '') -> Dict[str, torch.Tensor]:
    """The keys of a whole-LLaVA state dict (under ``prefix``) in :class:`LlavaParts`'
    layout: either transformers layout (:data:`LLAVA_LAYOUTS`), with or without the
    ``vision_model.`` level, re-keyed to ``parts``' own names; keys already in them stay as
    they are. The one re-keying of LLaVA checkpoints in mmkd (``load_state_dict``,
    ``LlavaModel(pretrained=...)``, ``LlavaModel.remap_state_dict`` use it)."""
    out = {}
    for key, value in state.items():
        if key.startswith(prefix):
            rest = key[len(prefix):]
            for old, new in _TO_PARTS:
                if rest.startswith(old):
                    rest = new + rest[len(old):]
                    break
            key = prefix + rest
        out[key] = value
    return vision_layout(out, parts.vision_tower, prefix + 'vision_tower.')


def _llava_init(module: nn.Module, std: float) -> None:
    """transformers' LLaVA initialisation (4.x ``LlavaPreTrainedModel._init_weights``),
    applied to every submodule as its ``post_init`` did: the same random weights
    distribution on every version."""
    if hasattr(module, 'class_embedding') and isinstance(module.class_embedding, nn.Parameter):
        module.class_embedding.data.normal_(mean=0.0, std=std)
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        module.weight.data.normal_(mean=0.0, std=std)
        if module.bias is not None:
            module.bias.data.zero_()
    elif isinstance(module, nn.Embedding):
        module.weight.data.normal_(mean=0.0, std=std)
        if module.padding_idx is not None:
            module.weight.data[module.padding_idx].zero_()


class LlavaParts(nn.Module):
    """A LLaVA model (vision tower, projector, causal LM) built from a ``LlavaConfig``.

    ``forward`` and ``generate`` take the arguments mmkd's :class:`LlavaModel` passes to
    ``LlavaForConditionalGeneration`` and return what it reads (``logits``,
    ``hidden_states``, ``image_hidden_states``; prompt + new ids).
    """

    def __init__(self, config) -> None:
        super().__init__()
        from transformers import AutoModel, AutoModelForCausalLM
        from transformers.models.llava.modeling_llava import LlavaMultiModalProjector
        self.config = config
        self.vision_tower = AutoModel.from_config(config.vision_config)
        self.multi_modal_projector = LlavaMultiModalProjector(config)
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        std = getattr(config, 'initializer_range', None) or config.text_config.initializer_range
        self.apply(lambda m: _llava_init(m, std))
        if getattr(config.text_config, 'tie_word_embeddings', False):
            self.language_model.tie_weights()
        self._register_load_state_dict_pre_hook(self._to_own_layout)

    def _to_own_layout(self, state_dict, prefix, *args) -> None:
        converted = to_parts_layout(dict(state_dict), self, prefix)
        if list(converted) != list(state_dict):
            state_dict.clear()
            state_dict.update(converted)

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    @property
    def _tied_weights_keys(self):
        tied = getattr(self.language_model, '_tied_weights_keys', None) or ()
        return [f'language_model.{k}' for k in tied]

    @property
    def generation_config(self):
        return self.language_model.generation_config

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: Optional[dict] = None):
        for part in (self.vision_tower, self.language_model):
            part.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs=gradient_checkpointing_kwargs)

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Projected visual tokens (B, N, D_text) of an image batch."""
        layer = self.config.vision_feature_layer
        hidden = self.vision_tower(pixel_values, output_hidden_states=True).hidden_states
        layers = [layer] if isinstance(layer, int) else list(layer)
        picked = [hidden[i] for i in layers]
        if self.config.vision_feature_select_strategy == 'default':
            picked = [h[:, 1:] for h in picked]
        return self.multi_modal_projector(torch.cat(picked, dim=-1))

    def _embeddings(self, input_ids: torch.Tensor, pixel_values: Optional[torch.Tensor]):
        embeds = self.language_model.get_input_embeddings()(input_ids)
        if pixel_values is None:
            return embeds, None
        features = self.image_features(pixel_values)
        mask = (input_ids == self.config.image_token_index).unsqueeze(-1)
        embeds = embeds.masked_scatter(mask, features.to(embeds.dtype))
        return embeds, features

    def forward(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None,
                pixel_values: Optional[torch.Tensor] = None, output_hidden_states: bool = False,
                use_cache: bool = False, return_dict: bool = True) -> SimpleNamespace:
        embeds, features = self._embeddings(input_ids, pixel_values)
        out = self.language_model(inputs_embeds=embeds, attention_mask=attention_mask,
                                  output_hidden_states=output_hidden_states,
                                  use_cache=use_cache, return_dict=True)
        return SimpleNamespace(logits=out.logits, image_hidden_states=features,
                               hidden_states=out.hidden_states if output_hidden_states else None)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None,
                 pixel_values: Optional[torch.Tensor] = None, **kwargs) -> torch.Tensor:
        """Prompt ids followed by the generated ones (the causal LM's ``generate`` on the
        merged embeddings)."""
        embeds, _ = self._embeddings(input_ids, pixel_values)
        new = self.language_model.generate(inputs_embeds=embeds, attention_mask=attention_mask,
                                           **kwargs)
        return torch.cat([input_ids, new.to(input_ids.device)], dim=1)
