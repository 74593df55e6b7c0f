"""A transformers LLaVA model (``LlavaForConditionalGeneration``) as an mmengine ``BaseModel``.

``LlavaModel`` builds a LLaVA-style multimodal LLM from configs (a CLIP or SigLIP
vision tower, an MLP projector, a Qwen2 or LLaMA language model) with random weights
(no download), optionally loads local weights, and trains/evaluates on conversation
batches made by :class:`~mmkd.datasets.shapes_vqa.PackVQAInputs` +
:class:`~.llava_data_preprocessor.LlavaDataPreprocessor`.

Position convention (transformers'): ``logits[:, t]`` is the distribution of token
``t + 1``; ``labels`` are *not* shifted (``labels[:, t]`` is the target of
``logits[:, t - 1]``). :func:`next_token_targets` gives the targets aligned with
the logits.
"""
from __future__ import annotations

import copy
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement
from torch import nn

from mmkd.registry import MODELS

from ..preprocessors.llava_data_preprocessor import IGNORE_INDEX
from .llava_parts import LLAVA_LAYOUTS, LlavaParts, to_parts_layout, vision_layout  # noqa: F401

VISION_TYPES = ('clip_vision_model', 'siglip_vision_model')
TEXT_TYPES = ('qwen2', 'llama')
TRAINABLE_PARTS = ('vision_tower', 'projector', 'llm')


# ----------------------------------------------------------------------------- helpers
def next_token_targets(labels: torch.Tensor) -> torch.Tensor:
    """Targets aligned with the logits: ``out[:, t] = labels[:, t + 1]``, -100 at the end."""
    out = torch.full_like(labels, IGNORE_INDEX)
    out[:, :-1] = labels[:, 1:]
    return out


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the positions whose target is not -100
    (float32 whatever the logits' dtype; 0 with a graph when nothing is labelled)."""
    targets = next_token_targets(labels)
    valid = targets != IGNORE_INDEX
    if not bool(valid.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[valid].float(), targets[valid])


def _hf_weights(path: str, key: str) -> Dict[str, torch.Tensor]:
    """A state dict from a Hugging Face folder (safetensors / bin, sharded or not), a
    ``.safetensors`` file or a torch checkpoint (mmkd checkpoints included), every file
    read by mmkd's safe loader."""
    from .hf_vision import read_weights
    if not osp.exists(path):
        raise FileNotFoundError(f'{key}={path!r} does not exist (a local folder or file; '
                                'LlavaModel never downloads)')
    state = read_weights(path, key)
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
    for prefix in ('architecture.', 'hf_model.'):
        if any(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return state


def _tied_to_present(own: Dict[str, torch.Tensor], state: Dict[str, torch.Tensor]) -> set:
    """Keys of ``own`` whose tensor is the very tensor of another key that ``state`` has
    (tied weights: ``lm_head.weight`` is ``embed_tokens.weight`` with
    ``tie_word_embeddings=True``), so that a file without them is complete."""
    by_ptr: Dict[tuple, List[str]] = {}
    for k, v in own.items():
        if torch.is_tensor(v) and v.numel():
            by_ptr.setdefault((v.data_ptr(), tuple(v.shape)), []).append(k)
    tied = set()
    for keys in by_ptr.values():
        if len(keys) > 1 and any(k in state for k in keys):
            tied.update(k for k in keys if k not in state)
    return tied


def _load_part(module: nn.Module, state: Dict[str, torch.Tensor], key: str,
               strip: Sequence[str] = ()) -> None:
    """Load ``state`` into ``module`` strictly, after dropping the first matching prefix.

    Tied tensors may be absent from the file (a Qwen2 with ``tie_word_embeddings=True``
    saves no ``lm_head.weight``); buffers the module keeps out of its state dict (CLIP's
    ``embeddings.position_ids``, saved by older transformers) are dropped from the file.
    Anything else missing or unexpected is an error naming the keys.
    """
    from .hf_vision import non_persistent_buffers
    for prefix in strip:
        if any(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            break
    own = module.state_dict()
    stale = non_persistent_buffers(module)
    state = {k: v for k, v in state.items() if k not in stale}
    tied = _tied_to_present(own, state)
    missing = sorted(k for k in own if k not in state and k not in tied)
    unexpected = sorted(k for k in state if k not in own)
    if missing or unexpected:
        hint = ''
        if any(k.endswith('lm_head.weight') for k in missing):
            hint = (' The file has no lm_head.weight: it was saved with tied embeddings '
                    '(Qwen1.5-0.5B/1.8B, Qwen2-0.5B/1.5B): set text_config.tie_word_embeddings=True.')
        raise KeyError(f'{key}: the weights do not match the model built from the config: '
                       f'missing {missing[:8]}{"..." if len(missing) > 8 else ""} '
                       f'({len(missing)}), unexpected {unexpected[:8]}'
                       f'{"..." if len(unexpected) > 8 else ""} ({len(unexpected)}).{hint}')
    shapes = [f'{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}'
              for k, v in state.items() if tuple(v.shape) != tuple(own[k].shape)]
    if shapes:
        raise KeyError(f'{key}: {len(shapes)} tensors have other shapes than the model built from '
                       f'the config, e.g. {shapes[:4]}: set the sizes of the config to the '
                       "checkpoint's")
    module.load_state_dict(state, strict=False)


_OFFICIAL_PROJECTOR = re.compile(
    r'(?:mm_projector(?:\.image_spatial_proj)?|connector\._connector)\.([02])\.(weight|bias)$')


def official_projector(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """An official ``mlp2x_gelu`` projector file (LLaVA's stage-1 ``mm_projector.bin``:
    ``model.mm_projector.{0,2}.*``; LLaVA-MoD's ``...image_spatial_proj.{0,2}.*``;
    TinyLLaVA's ``connector._connector.{0,2}.*``) renamed to transformers' projector
    (``linear_1``, ``linear_2``); any other state dict is returned unchanged."""
    matches = {k: _OFFICIAL_PROJECTOR.search(k) for k in state}
    if not state or not all(matches.values()):
        return state
    names = {'0': 'linear_1', '2': 'linear_2'}
    return {f'{names[m.group(1)]}.{m.group(2)}': state[k] for k, m in matches.items()}


def causal_lm_view(hf: nn.Module) -> nn.Module:
    """The language model of a transformers LLaVA in ``*ForCausalLM`` layout.

    A container (not part of the model) whose state dict is that of a Qwen2 / LLaMA
    ``*ForCausalLM`` (``model.*``, ``lm_head.weight``) and whose tensors are the LLaVA's
    own: loading into it loads the LLaVA. transformers <= 4.51 nests the causal LM as
    ``language_model``; later versions split it into ``model.language_model`` and a top
    ``lm_head``; the view is the same for both.
    """
    embed = hf.get_input_embeddings()
    decoder = next((m for m in hf.modules() if getattr(m, 'embed_tokens', None) is embed), None)
    head = hf.get_output_embeddings()
    if decoder is None or head is None:
        raise TypeError(f'{type(hf).__name__}: no decoder with embed_tokens / no output '
                        'embeddings found; is it a transformers LLaVA?')
    view = nn.Module()
    view.model = decoder
    view.lm_head = head
    return view


def llava_part_prefixes(hf: nn.Module) -> Dict[str, str]:
    """State-dict prefixes (inside ``hf``) of the LLaVA parts.

    ``vision_tower`` (a ``CLIPVisionModel`` / ``SiglipVisionModel``: ``vision_model.*``
    follows up to transformers 4.x, its ``embeddings.*`` etc. directly from 5.0 on),
    ``projector`` (``linear_1``, ``linear_2``), ``decoder`` (what a causal-LM checkpoint
    holds under ``model.``) and ``lm_head``. For mmkd's :class:`~.llava_parts.LlavaParts`
    these are ``LLAVA_LAYOUTS['transformers<=4.51']`` on every version (``decoder``
    ``language_model.model.``); for transformers' own ``LlavaForConditionalGeneration``
    >= 4.52 ``model.language_model.``.
    """
    names: Dict[int, str] = {}
    for name, module in hf.named_modules():
        names.setdefault(id(module), name)
    view = causal_lm_view(hf)
    return dict(vision_tower=names[id(hf.vision_tower)] + '.',
                projector=names[id(hf.multi_modal_projector)] + '.',
                decoder=names[id(view.model)] + '.', lm_head=names[id(view.lm_head)] + '.')


def check_same_vocabulary(teacher: nn.Module, student: nn.Module, teacher_key: str = 'teacher',
                          student_key: str = 'architecture') -> None:
    """Raise ``ValueError`` unless the two LLaVA models share vocabulary size and tokenizer.

    Token-level distillation compares distributions over the vocabulary id by id,
    which only means something when the same id is the same token for both.
    """
    t_size, s_size = getattr(teacher, 'vocab_size', None), getattr(student, 'vocab_size', None)
    t_tok = getattr(teacher, 'tokenizer_identity', None)
    s_tok = getattr(student, 'tokenizer_identity', None)
    problems = []
    if t_size != s_size:
        problems.append(f'vocab_size: {teacher_key} {t_size} vs {student_key} {s_size}')
    if t_tok != s_tok:
        problems.append(f'tokenizer: {teacher_key} {t_tok!r} vs {student_key} {s_tok!r}')
    if problems:
        raise ValueError('teacher and student must share one vocabulary for token-level '
                         'distillation, but ' + '; '.join(problems) + '. Give both '
                         "text_config.vocab_size and the same `tokenizer`.")


def remap_llava_layout(state: Dict[str, torch.Tensor], hf: nn.Module) -> Dict[str, torch.Tensor]:
    """Re-key a whole-LLaVA state dict of either transformers layout (:data:`LLAVA_LAYOUTS`:
    <= 4.51 or >= 4.52), with or without CLIP / SigLIP's ``vision_model.`` level, to the
    names of ``hf`` (a :class:`~.llava_parts.LlavaParts`, which has the <= 4.51 layout on
    every transformers version). Keys already in that layout stay as they are, and a state
    dict of neither layout is returned unchanged. The same re-keying as
    :func:`~.llava_parts.to_parts_layout` (one function does it)."""
    if not isinstance(hf, LlavaParts):
        raise TypeError(f'remap_llava_layout: hf is a {type(hf).__name__}, not the LlavaParts '
                        "of mmkd's LlavaModel (LlavaModel.hf_model)")
    return to_parts_layout(state, hf)


# ----------------------------------------------------------------------------- model
@MODELS.register_module()
class LlavaModel(BaseModel):
    """A transformers LLaVA (:class:`~.llava_parts.LlavaParts`: a ``LlavaConfig``'s vision
    tower, projector and causal LM, the layout of ``LlavaForConditionalGeneration`` up to
    transformers 4.51 on every version) built from configs, as a BaseModel.

    Inputs (from :class:`~.llava_data_preprocessor.LlavaDataPreprocessor`): a dict
    with ``pixel_values``, ``input_ids``, ``attention_mask``, ``labels`` and, for
    generation, ``prompt_input_ids`` / ``prompt_attention_mask`` (left-padded).

    Modes:
        * ``'loss'``: ``dict(loss_ce=...)``, next-token cross-entropy on the response
          tokens only (labels -100 elsewhere).
        * ``'tensor'``: the dict of :meth:`forward_features` (``logits`` (B, T, V),
          ``image_token_mask`` (B, T), ``labels``, ``attention_mask``,
          ``image_features``, ``hidden_states`` when ``tensor_hidden_states``).
        * ``'predict'``: greedy decoding of ``max_new_tokens`` from the prompts; each
          data sample gets ``pred_text`` (decoded up to ``</s>``) and
          ``pred_token_ids``.

    Args:
        vision_config (dict): a transformers vision config; ``model_type`` selects
            ``'clip_vision_model'`` (CLIPVisionConfig) or ``'siglip_vision_model'``
            (SiglipVisionConfig), the other keys are its arguments.
        text_config (dict): a transformers LLM config; ``model_type`` ``'qwen2'``
            (Qwen2Config) or ``'llama'`` (LlamaConfig).
        tokenizer (dict, optional): the chat tokenizer (see
            :func:`mmkd.text.chat_tokenizers.build_chat_tokenizer`; default the shapes
            VQA :class:`ChatWordTokenizer`). Gives ``image_token_index``, pad/eos ids,
            decoding and :attr:`tokenizer_identity`.
        pretrained (str | dict, optional): local weights, loaded at construction:
            a folder/file of a whole LLaVA (HF ``LlavaForConditionalGeneration`` or a
            checkpoint of this wrapper / of an mmkd algorithm), or a dict with any of
            ``vision_tower`` (a CLIP/SigLIP folder or file), ``language_model`` (a
            Qwen2/LLaMA causal-LM folder or file, tied embeddings included),
            ``projector`` (a file: this wrapper's projector, or an official ``mlp2x_gelu``
            projector such as LLaVA's stage-1 ``mm_projector.bin``). Every file is read
            by mmkd's safe loader; each part loads strictly (missing and unexpected
            tensors are errors naming them). An official LLaVA / LLaVA-MoD / LLaVA-KD
            checkpoint converts with ``tools/model_converters/llava_official_to_mmkd.py``.
        gradient_checkpointing (bool): activation checkpointing in both towers.
        trainable (sequence[str], optional): parts that train, any of
            ``'vision_tower'``, ``'projector'``, ``'llm'``; the others are frozen
            (``requires_grad=False``). None: everything trains. LLaVA stage 1:
            ``('projector',)``; stage 2: ``('projector', 'llm')``.
        dtype (str, optional): 'bfloat16' / 'float16' / 'float32' weights.
        max_new_tokens (int): tokens generated in 'predict' mode.
        tensor_hidden_states (bool): 'tensor' mode also returns hidden states.
        data_preprocessor (dict, optional): default ``LlavaDataPreprocessor`` with
            the tokenizer's pad id.
        **llava_kwargs: other ``LlavaConfig`` arguments (``projector_hidden_act``,
            ``vision_feature_layer``, ``vision_feature_select_strategy`` (default
            'default' = drop CLS for CLIP, 'full' for SigLIP which has none),
            ``image_token_index``, ...).
    """

    def __init__(self,
                 vision_config: dict,
                 text_config: dict,
                 tokenizer: Optional[dict] = None,
                 pretrained: Optional[Union[str, dict]] = None,
                 gradient_checkpointing: bool = False,
                 trainable: Optional[Sequence[str]] = None,
                 dtype: Optional[str] = None,
                 max_new_tokens: int = 8,
                 tensor_hidden_states: bool = False,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None,
                 **llava_kwargs) -> None:
        from mmkd.text.chat_tokenizers import build_chat_tokenizer
        self.tokenizer = build_chat_tokenizer(tokenizer, 'LlavaModel.tokenizer')
        if data_preprocessor is None:
            data_preprocessor = dict(type='LlavaDataPreprocessor',
                                     pad_token_id=self.tokenizer.pad_token_id)
        elif isinstance(data_preprocessor, dict):
            data_preprocessor = dict(data_preprocessor)
            data_preprocessor.setdefault('type', 'LlavaDataPreprocessor')
            if data_preprocessor['type'] in ('LlavaDataPreprocessor', 'mmkd.LlavaDataPreprocessor'):
                data_preprocessor.setdefault('pad_token_id', self.tokenizer.pad_token_id)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.config = self._build_config(vision_config, text_config, llava_kwargs)
        # LLaVA's parts in one layout on every transformers version (llava_parts.py)
        self.hf_model = LlavaParts(self.config)
        self.hf_model.generation_config.pad_token_id = self.tokenizer.pad_token_id
        self.hf_model.generation_config.eos_token_id = self.tokenizer.eos_token_id
        if pretrained is not None:
            self._load_pretrained(pretrained)
        if dtype is not None:
            dtypes = {'bfloat16': torch.bfloat16, 'float16': torch.float16, 'float32': torch.float32}
            if dtype not in dtypes:
                raise ValueError(f'LlavaModel.dtype={dtype!r}; valid: {sorted(dtypes)}')
            self.hf_model.to(dtypes[dtype])
        if gradient_checkpointing:
            self.hf_model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs=dict(use_reentrant=False))
        self.trainable = self._set_trainable(trainable)
        self.unused_vision_params = self._freeze_unused_vision()
        if max_new_tokens < 1:
            raise ValueError(f'LlavaModel.max_new_tokens={max_new_tokens} must be >= 1')
        self.max_new_tokens = max_new_tokens
        self.tensor_hidden_states = tensor_hidden_states

    # construction ---------------------------------------------------------------------
    def _build_config(self, vision_config: dict, text_config: dict, kwargs: dict):
        from transformers import LlavaConfig
        vision_config, text_config = copy.deepcopy(dict(vision_config)), copy.deepcopy(dict(text_config))
        v_type = vision_config.pop('model_type', vision_config.pop('type', None))
        t_type = text_config.pop('model_type', text_config.pop('type', None))
        if v_type not in VISION_TYPES:
            raise ValueError(f'LlavaModel.vision_config.model_type={v_type!r}; valid: {VISION_TYPES}')
        if t_type not in TEXT_TYPES:
            raise ValueError(f'LlavaModel.text_config.model_type={t_type!r}; valid: {TEXT_TYPES}')
        tok = self.tokenizer
        text_config.setdefault('vocab_size', tok.vocab_size)
        if text_config['vocab_size'] < tok.vocab_size:
            raise ValueError(f'LlavaModel.text_config.vocab_size={text_config["vocab_size"]} is '
                             f'smaller than the tokenizer\'s {tok.vocab_size} tokens ({tok.identity})')
        for name in ('pad_token_id', 'eos_token_id', 'bos_token_id'):
            if getattr(tok, name, None) is not None:
                text_config.setdefault(name, getattr(tok, name))
        if t_type == 'qwen2' and not text_config.get('use_sliding_window', False):
            text_config['sliding_window'] = None  # off anyway; silences transformers' warning
        kwargs = dict(kwargs)
        kwargs.setdefault('image_token_index', tok.image_token_id)
        if not 0 <= kwargs['image_token_index'] < text_config['vocab_size']:
            raise ValueError(f'LlavaModel.image_token_index={kwargs["image_token_index"]} is outside '
                             f'the vocabulary (0..{text_config["vocab_size"] - 1})')
        kwargs.setdefault('vision_feature_select_strategy',
                          'default' if v_type == 'clip_vision_model' else 'full')
        strategy = kwargs['vision_feature_select_strategy']
        if strategy not in ('default', 'full'):
            raise ValueError(f'LlavaModel.vision_feature_select_strategy={strategy!r}; valid: '
                             "'default' (drop the first token, CLIP's CLS), 'full'")
        image_size, patch = vision_config.get('image_size', 224), vision_config.get('patch_size', 32)
        if image_size % patch:
            raise ValueError(f'LlavaModel.vision_config: image_size={image_size} is not a multiple of '
                             f'patch_size={patch}')
        tokens = (image_size // patch) ** 2 + (1 if v_type == 'clip_vision_model' else 0)
        tokens -= 1 if strategy == 'default' else 0
        kwargs['image_seq_length'] = tokens
        try:
            return LlavaConfig(vision_config=dict(vision_config, model_type=v_type),
                               text_config=dict(text_config, model_type=t_type), **kwargs)
        except TypeError as err:
            raise TypeError(f'LlavaModel: {err}') from None

    def _load_pretrained(self, pretrained: Union[str, dict]) -> None:
        hf = self.hf_model
        if isinstance(pretrained, str):
            state = to_parts_layout(_hf_weights(pretrained, 'LlavaModel.pretrained'), hf)
            _load_part(hf, state, f'LlavaModel.pretrained={pretrained!r}')
            return
        if not isinstance(pretrained, dict):
            raise TypeError(f'LlavaModel.pretrained must be a path or a dict, got {pretrained!r}')
        parts = dict(vision_tower=(hf.vision_tower, ('vision_tower.', )),
                     language_model=(causal_lm_view(hf), ('language_model.', )),
                     projector=(hf.multi_modal_projector, ('multi_modal_projector.', )))
        bad = sorted(set(pretrained) - set(parts))
        if bad:
            raise KeyError(f'LlavaModel.pretrained has unknown parts {bad}; valid: {sorted(parts)}')
        for name, path in pretrained.items():
            if path is None:
                continue
            module, strip = parts[name]
            state = _hf_weights(path, f'LlavaModel.pretrained.{name}')
            if name == 'vision_tower' and not any(k.startswith(strip) for k in state) and \
                    any(k.startswith('vision_model.') for k in state):
                # a full CLIP/SigLIP checkpoint (CLIPModel / SiglipModel): keep the vision
                # half (a vision-only one saved by transformers 5 has no `vision_model.`
                # level and is kept whole)
                state = {k: v for k, v in state.items() if k.startswith('vision_model.')}
            if name == 'vision_tower':  # with or without the `vision_model.` level
                state = vision_layout(state, module, strip[0] if any(
                    k.startswith(strip[0]) for k in state) else '')
                own = set(module.state_dict())
                if not any((k[len(strip[0]):] if k.startswith(strip[0]) else k) in own
                           for k in state):
                    raise KeyError(
                        f'LlavaModel.pretrained.vision_tower={path!r}: no vision_model.* tensors '
                        'in it (neither a CLIPVisionModel / SiglipVisionModel nor a CLIPModel / '
                        'SiglipModel folder); a LLaVA checkpoint (model.vision_tower.*) converts '
                        'with tools/model_converters/llava_official_to_mmkd.py')
            if name == 'projector':
                state = official_projector(state)
            _load_part(module, state, f'LlavaModel.pretrained.{name}={path!r}', strip)

    def _freeze_unused_vision(self) -> List[str]:
        """Freeze the vision parameters that never reach the output, return their names.

        LLaVA reads the vision tower's hidden states at ``vision_feature_layer`` (-2 by
        default), so the encoder layers after it, the final LayerNorm and SigLIP's pooling
        head get no gradient; DDP would stop with "parameters that were not used in
        producing loss". Freezing them changes no output.
        """
        tower = self.hf_model.vision_tower
        vision = getattr(tower, 'vision_model', tower)
        layers = vision.encoder.layers
        wanted = self.config.vision_feature_layer
        wanted = list(wanted) if isinstance(wanted, (list, tuple)) else [wanted]
        # hidden_states[0] is the embedding output, hidden_states[i] the output of layer i-1
        last = max(i if i >= 0 else len(layers) + 1 + i for i in wanted)
        unused = {f'encoder.layers.{i}': layers[i] for i in range(last, len(layers))}
        for name in ('post_layernorm', 'head'):
            if getattr(vision, name, None) is not None:
                unused[name] = getattr(vision, name)
        names = []
        for prefix, module in unused.items():
            for pname, param in module.named_parameters():
                param.requires_grad_(False)
                names.append(f'{prefix}.{pname}')
        return names

    def _set_trainable(self, trainable: Optional[Sequence[str]]):
        if trainable is None:
            return TRAINABLE_PARTS
        if isinstance(trainable, str):
            trainable = (trainable, )
        bad = [p for p in trainable if p not in TRAINABLE_PARTS]
        if bad or not trainable:
            raise ValueError(f'LlavaModel.trainable={tuple(trainable)!r}; valid: a non-empty subset '
                             f'of {TRAINABLE_PARTS}')
        modules = dict(vision_tower=self.hf_model.vision_tower,
                       projector=self.hf_model.multi_modal_projector,
                       llm=self.hf_model.language_model)
        for name, module in modules.items():
            module.requires_grad_(name in trainable)
        return tuple(trainable)

    def remap_state_dict(self, state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """A state dict of this wrapper (``hf_model.*``) written in either transformers
        layout of LLaVA (:data:`LLAVA_LAYOUTS`: <= 4.51 or >= 4.52) and with or without the
        vision tower's ``vision_model.`` level (transformers 4.x / 5.x), re-keyed to this
        model's names (:func:`remap_llava_layout`); anything else is returned unchanged.
        For loaders of mmkd checkpoints (``teacher_ckpt``) that match names strictly."""
        inner = {k[len('hf_model.'):]: v for k, v in state.items() if k.startswith('hf_model.')}
        if not inner or len(inner) != len(state):
            return state
        return {f'hf_model.{k}': v for k, v in remap_llava_layout(inner, self.hf_model).items()}

    def init_weights(self) -> None:
        """Weights are initialised (and ``pretrained`` loaded) at construction; the
        runner's ``init_weights()`` must not re-initialise transformers' modules."""
        self._is_init = True

    # properties -----------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return int(self.config.text_config.vocab_size)

    @property
    def tokenizer_identity(self) -> str:
        return self.tokenizer.identity

    @property
    def image_token_index(self) -> int:
        return int(self.config.image_token_index)

    @property
    def num_image_tokens(self) -> int:
        """Visual tokens per image (the ``<image>`` repeats a conversation needs)."""
        return int(self.config.image_seq_length)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.hf_model.parameters()).dtype

    # forward --------------------------------------------------------------------------
    def forward_features(self, batch: dict, output_hidden_states: bool = False,
                         sequence: Optional[str] = None) -> Dict[str, torch.Tensor]:
        """One forward pass over a preprocessed batch; what distillers read.

        Args:
            batch (dict): ``LlavaDataPreprocessor`` output ``inputs``.
            output_hidden_states (bool): also return the LLM's hidden states.
            sequence (str, optional): ``'chosen'`` or ``'rejected'`` runs the
                preference sequences (``{sequence}_input_ids`` etc.) instead of
                ``input_ids``.

        Returns:
            dict: ``logits`` (B, T, V), ``labels`` (B, T, unshifted, -100 outside
            the response), ``attention_mask`` (B, T), ``image_token_mask`` (B, T) bool,
            ``image_features`` (B, N, D) projected visual tokens (the LLM's inputs at
            the image positions), ``hidden_states`` (tuple of (B, T, D), embeddings
            first, or None).
        """
        prefix = '' if sequence is None else f'{sequence}_'
        if sequence not in (None, 'chosen', 'rejected'):
            raise ValueError(f"forward_features(sequence={sequence!r}); valid: None, 'chosen', 'rejected'")
        key = f'{prefix}input_ids'
        if key not in batch:
            raise KeyError(f'LlavaModel.forward_features: the batch has no {key!r} (keys: '
                           f'{sorted(batch)})')
        input_ids = batch[key]
        attention_mask = batch.get(f'{prefix}attention_mask')
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        image_mask = input_ids == self.image_token_index
        pixel_values = batch.get('pixel_values')
        if pixel_values is not None:
            pixel_values = pixel_values.to(self.dtype)
            counts = image_mask.sum(1)
            if bool((counts != self.num_image_tokens).any()):
                raise ValueError(
                    f'LlavaModel: every sequence must hold num_image_tokens={self.num_image_tokens} '
                    f'<image> tokens (id {self.image_token_index}), got {counts.tolist()}; set '
                    'PackVQAInputs.num_image_tokens to the vision tower\'s (image_size / patch_size)^2'
                    ' (+1 for CLIP with the CLS token and vision_feature_select_strategy=\'full\')')
        out = self.hf_model(input_ids=input_ids, attention_mask=attention_mask,
                            pixel_values=pixel_values, output_hidden_states=output_hidden_states,
                            use_cache=False, return_dict=True)
        return dict(logits=out.logits, labels=batch.get(f'{prefix}labels'),
                    attention_mask=attention_mask, image_token_mask=image_mask,
                    image_features=out.image_hidden_states,
                    hidden_states=out.hidden_states if output_hidden_states else None)

    def forward(self, inputs: dict, data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'loss'):
        if mode == 'loss':
            feats = self.forward_features(inputs)
            if feats['labels'] is None:
                raise KeyError("LlavaModel 'loss' mode needs labels in the batch")
            return dict(loss_ce=causal_lm_loss(feats['logits'], feats['labels']))
        if mode == 'tensor':
            return self.forward_features(inputs, output_hidden_states=self.tensor_hidden_states)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise ValueError(f"LlavaModel: mode={mode!r} is not valid; choose 'loss', 'predict' or 'tensor'")

    @torch.no_grad()
    def generate(self, inputs: dict, max_new_tokens: Optional[int] = None) -> torch.Tensor:
        """Greedy continuation ids (B, max_new_tokens) of the left-padded prompts."""
        ids = inputs.get('prompt_input_ids', inputs['input_ids'])
        mask = inputs.get('prompt_attention_mask', inputs.get('attention_mask'))
        if mask is None:
            mask = torch.ones_like(ids)
        pixel_values = inputs.get('pixel_values')
        gen = self.hf_model.generate(
            input_ids=ids, attention_mask=mask,
            pixel_values=None if pixel_values is None else pixel_values.to(self.dtype),
            max_new_tokens=max_new_tokens or self.max_new_tokens, do_sample=False, num_beams=1,
            pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.tokenizer.eos_token_id)
        return gen[:, ids.shape[1]:]

    def predict(self, inputs: dict, data_samples: Optional[List[BaseDataElement]] = None
                ) -> List[BaseDataElement]:
        new_tokens = self.generate(inputs)
        if data_samples is None:
            data_samples = [BaseDataElement() for _ in range(new_tokens.shape[0])]
        for sample, row in zip(data_samples, new_tokens):
            sample.pred_token_ids = row.cpu()
            sample.pred_text = self.tokenizer.decode(row.tolist())
        return data_samples
