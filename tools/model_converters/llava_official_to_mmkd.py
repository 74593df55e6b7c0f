#!/usr/bin/env python
"""Convert an official LLaVA / LLaVA-MoD / LLaVA-KD checkpoint into mmkd's LlavaModel layout.

The papers' real teachers are published in their own code bases' layouts, not in
transformers' ``LlavaForConditionalGeneration`` one that mmkd's ``LlavaModel`` wraps.
This tool renames their tensors, checks that nothing is missing, and writes an mmkd
checkpoint (``{'state_dict': {'hf_model.<key>': tensor}, 'meta': ...}``) that
``teacher_ckpt=OUT`` (strict) or ``LlavaModel(pretrained=OUT)`` loads.

Layouts read (``--layout auto`` finds it from the tensor names):

* ``llava`` (haotian-liu/LLaVA, ``Llava*ForCausalLM``): ``model.vision_tower.vision_tower.*``
  (a transformers ``CLIPVisionModel``), ``model.mm_projector.{0,2}.*`` (``mlp2x_gelu``:
  Linear, GELU, Linear), ``model.embed_tokens`` / ``model.layers.*`` / ``model.norm``,
  ``lm_head.weight``; config.json keys ``mm_projector_type``, ``mm_vision_select_layer``,
  ``mm_vision_select_feature``.
* ``moe-llava`` (LLaVA-MoD, shufangxun/LLaVA-MoD, MoE-LLaVA's layout):
  ``model.image_tower.image_tower.*``, ``model.mm_projector.image_spatial_proj.{0,2}.*``,
  the language model as above; config.json ``image_projector_type``. Only dense
  language models convert (LLaVA-MoD's teachers, its dense students); a sparse (MoE)
  student's expert tensors have no place in ``LlavaModel`` and are refused by name.
* ``tinyllava`` (LLaVA-KD, Fantasyele/LLaVA-KD, TinyLLaVA Factory's layout):
  ``vision_tower._vision_tower.*`` (CLIP or SigLIP), ``connector._connector.{0,2}.*``,
  ``language_model.model.*``, ``language_model.lm_head.weight``; config.json
  ``connector_type``, ``vision_feature_layer``, ``vision_feature_select_strategy``,
  ``text_config`` / ``vision_config``.

Tied embeddings (``tie_word_embeddings=true``: Qwen1.5-0.5B/1.8B, Qwen2-0.5B/1.5B) save no
``lm_head.weight``; the output holds it as the embedding (one tensor, two names), as an
mmkd checkpoint of a tied model does. ``vision_model.embeddings.position_ids`` (saved by
older transformers, recomputed by current ones) is dropped when the installed
transformers keeps it out of the state dict. The output keys are those of
``LlavaModel.hf_model`` (:class:`~mmkd.models.task_models.llava_parts.LlavaParts`: the layout
of transformers <= 4.51, ``language_model.model.``, on every version) on the installed
transformers: the vision tower has the ``vision_model.`` level up to 4.x, not on 5.x;
``meta.transformers_layout`` records which. ``teacher_ckpt`` and
``LlavaModel(pretrained=OUT)`` re-key a file written under the other version themselves.

Usage::

    python tools/model_converters/llava_official_to_mmkd.py IN OUT [--config CFG]
    # IN: the checkpoint folder (config.json + model.safetensors / sharded / pytorch_model.bin)
    #     or one weights file; OUT: the .pth to write
    # --config: an mmkd config whose LlavaModel (model.teacher, else model.architecture,
    #     else model) must load OUT strictly: names and shapes are checked (on the meta
    #     device, no memory for the weights)
    # --vision-tower FOLDER: the CLIP / SigLIP save_pretrained folder (or full CLIPModel /
    #     SiglipModel folder) when IN holds no vision tower tensors

Every file is read by mmkd's safe loader (safetensors, or ``torch.load(weights_only=True)``).
"""
import argparse
import json
import os.path as osp
import re
import sys
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import torch  # noqa: E402

LAYOUTS = {
    # name: (vision prefix, projector prefixes (first, second Linear), language model
    #        prefixes (decoder, lm_head), config.json key of the projector type)
    'llava': ('model.vision_tower.vision_tower.', ('model.mm_projector.0.', 'model.mm_projector.2.'),
              ('model.', 'lm_head.'), 'mm_projector_type'),
    'moe-llava': ('model.image_tower.image_tower.',
                  ('model.mm_projector.image_spatial_proj.0.', 'model.mm_projector.image_spatial_proj.2.'),
                  ('model.', 'lm_head.'), 'image_projector_type'),
    'tinyllava': ('vision_tower._vision_tower.', ('connector._connector.0.', 'connector._connector.2.'),
                  ('language_model.model.', 'language_model.lm_head.'), 'connector_type'),
}
PROJECTOR_TENSORS = ('weight', 'bias')
# where each layout keeps any projector module (another projector type, video projectors)
PROJECTOR_ROOTS = {'llava': ('model.mm_projector.', ), 'moe-llava': ('model.mm_projector.', ),
                   'tinyllava': ('connector.', )}


class ConversionError(ValueError):
    """The input is not a convertible checkpoint; the message names the file and the key."""


# ----------------------------------------------------------------------------- reading
def read_input(path: str) -> Tuple[Dict[str, torch.Tensor], dict, str]:
    """(tensors, config.json or {}, how to name the input in errors)."""
    from mmkd.models.task_models.hf_vision import read_weights, weight_files
    if not osp.exists(path):
        raise FileNotFoundError(f'IN={path!r} does not exist (an official checkpoint folder or '
                                'weights file; nothing is downloaded)')
    config = {}
    if osp.isdir(path):
        files = [osp.basename(f) for f in weight_files(path, 'IN')]
        shown = f'IN={path!r} (weights {files[:4]}{"..." if len(files) > 4 else ""})'
        cfg_path = osp.join(path, 'config.json')
        if osp.isfile(cfg_path):
            try:
                with open(cfg_path) as f:
                    config = json.load(f)
            except ValueError as err:
                raise ConversionError(f'IN={path!r}: config.json is not json: {err}') from None
    else:
        shown = f'IN={path!r}'
    return read_weights(path, 'IN'), config, shown


def detect_layout(state: Dict[str, torch.Tensor], shown: str) -> str:
    keys = list(state)
    if any(k.startswith(('connector._connector.', 'language_model.model.')) for k in keys):
        return 'tinyllava'
    if any(k.startswith(('model.mm_projector.image_spatial_proj.', 'model.image_tower.'))
           for k in keys):
        return 'moe-llava'
    if any(k.startswith(('model.mm_projector.', 'model.vision_tower.')) for k in keys):
        return 'llava'
    hint = ''
    if any(k.startswith(('hf_model.', 'architecture.')) for k in keys) or any(
            k.startswith(('language_model.', 'model.language_model.', 'multi_modal_projector.',
                          'model.multi_modal_projector.')) for k in keys):
        hint = (' It looks like a transformers LlavaForConditionalGeneration or mmkd checkpoint, '
                'which LlavaModel(pretrained=...) / teacher_ckpt load as they are.')
    raise ConversionError(
        f'{shown} is not an official LLaVA / LLaVA-MoD / LLaVA-KD checkpoint: no projector '
        '(model.mm_projector.*, model.mm_projector.image_spatial_proj.*, connector._connector.*) '
        f'and no vision tower key of those layouts; it holds e.g. {sorted(keys)[:5]}.{hint}')


def _nested(config: dict, *names, default=None):
    """The first of ``names`` in config.json, or in its text_config."""
    for name in names:
        if name in config:
            return config[name]
        if name in (config.get('text_config') or {}):
            return config['text_config'][name]
    return default


# ----------------------------------------------------------------------------- mapping
def split_parts(state: Dict[str, torch.Tensor], layout: str, config: dict, shown: str,
                vision_tower: Optional[str] = None) -> Dict[str, Dict[str, torch.Tensor]]:
    """The tensors of each part, named as in the part's own transformers model.

    ``vision``: ``vision_model.*`` (CLIPVisionModel / SiglipVisionModel); ``projector``:
    ``linear_1.*``, ``linear_2.*`` (LlavaMultiModalProjector); ``causal_lm``: ``model.*``,
    ``lm_head.weight`` (Qwen2ForCausalLM / LlamaForCausalLM).
    """
    v_prefix, (p1, p2), (dec, head), proj_key = LAYOUTS[layout]
    proj_type = config.get(proj_key, None if config else 'mlp2x_gelu')
    if layout == 'llava' and config and proj_type is None:
        proj_type = 'linear'  # LLaVA's default when the key is absent
    if proj_type != 'mlp2x_gelu':
        raise ConversionError(
            f'{shown}: config.json {proj_key}={proj_type!r}; mmkd\'s LlavaModel (transformers\' '
            'LlavaMultiModalProjector: Linear, GELU, Linear) holds the mlp2x_gelu projector only')
    projector_prefixes = PROJECTOR_ROOTS[layout]
    parts = dict(vision={}, projector={}, causal_lm={})
    rest = {}
    for k, v in state.items():
        if k.startswith(v_prefix):
            parts['vision'][k[len(v_prefix):]] = v
        elif k.startswith(p1):
            parts['projector']['linear_1.' + k[len(p1):]] = v
        elif k.startswith(p2):
            parts['projector']['linear_2.' + k[len(p2):]] = v
        elif k.startswith(projector_prefixes):
            rest[k] = v  # a projector tensor outside Linear 0 / 2: another projector
        elif k.startswith(head):
            parts['causal_lm']['lm_head.' + k[len(head):]] = v
        elif k.startswith(dec):
            parts['causal_lm']['model.' + k[len(dec):]] = v
        else:
            rest[k] = v
    if rest:
        raise ConversionError(
            f'{shown}: {len(rest)} tensors fit no part of the {layout} layout (vision tower '
            f'{v_prefix}*, projector {p1}* / {p2}*, language model {dec}* / {head}*): '
            f'{sorted(rest)[:8]}. A projector other than mlp2x_gelu or a video tower has no '
            'place in mmkd\'s LlavaModel')
    for prefix, name in ((p1, 'linear_1.'), (p2, 'linear_2.')):
        for t in PROJECTOR_TENSORS:
            if name + t not in parts['projector']:
                raise ConversionError(
                    f'{shown}: the projector tensor {prefix + t!r} is missing (the mlp2x_gelu '
                    f'projector needs {[p + x for p in (p1, p2) for x in PROJECTOR_TENSORS]}): '
                    'an incomplete download or copy. (LLaVA\'s stage 1 saves the projector '
                    'alone, as mm_projector.bin: that file loads with '
                    'LlavaModel(pretrained=dict(projector=FILE)).)')
    if not parts['vision']:
        if vision_tower is None:
            tower = _nested(config, 'mm_vision_tower', 'mm_image_tower',
                            'vision_model_name_or_path', default='the CLIP/SigLIP model')
            raise ConversionError(
                f'{shown} holds no vision tower tensors ({v_prefix}*): the official code loads '
                f'the tower from {tower!r} instead. Pass --vision-tower FOLDER, that model\'s '
                'save_pretrained folder (CLIPVisionModel / SiglipVisionModel or the full '
                'CLIPModel / SiglipModel)')
        parts['vision'] = _vision_folder(vision_tower)
    elif vision_tower is not None:
        raise ConversionError(f'--vision-tower {vision_tower!r}: {shown} holds its own vision '
                              f'tower ({v_prefix}*); drop --vision-tower')
    elif not any(k.startswith('vision_model.') for k in parts['vision']):
        # a tower saved by transformers >= 5 (no vision_model. level): the names below have it
        parts['vision'] = {'vision_model.' + k: v for k, v in parts['vision'].items()}
    if not any(k.startswith('model.embed_tokens.') for k in parts['causal_lm']):
        raise ConversionError(f'{shown}: the language model tensor {dec + "embed_tokens.weight"!r} '
                              'is missing: an incomplete checkpoint (a shard not copied?)')
    if 'lm_head.weight' not in parts['causal_lm']:
        tied = _nested(config, 'tie_word_embeddings', default=None)
        if not tied:
            said = ('config.json does not set tie_word_embeddings=true' if config else
                    'there is no config.json to say tie_word_embeddings=true')
            raise ConversionError(
                f'{shown}: the language model tensor {head + "weight"!r} is missing and {said}: '
                'an incomplete checkpoint. (A model saved with tied embeddings has no lm_head; '
                'give the folder with its config.json.)')
        parts['causal_lm']['lm_head.weight'] = parts['causal_lm']['model.embed_tokens.weight']
    return parts


def _vision_folder(folder: str) -> Dict[str, torch.Tensor]:
    from mmkd.models.task_models.hf_vision import read_weights
    if not osp.isdir(folder):
        raise FileNotFoundError(f'--vision-tower {folder!r} is not a folder (a save_pretrained '
                                'folder of CLIP / SigLIP)')
    state = read_weights(folder, '--vision-tower')
    vision = {k: v for k, v in state.items() if k.startswith('vision_model.')}
    if not vision and any(k.startswith('embeddings.patch_embedding.') for k in state):
        # a CLIPVisionModel / SiglipVisionModel folder written by transformers >= 5, which
        # has no vision_model. level
        vision = {'vision_model.' + k: v for k, v in state.items()}
    if not vision:
        raise ConversionError(f'--vision-tower {folder!r} holds no vision_model.* tensors: not a '
                              'CLIP / SigLIP (vision or full) folder; it holds e.g. '
                              f'{sorted(state)[:5]}')
    return vision


# ----------------------------------------------------------------------------- sizes
def _count(keys, pattern: str) -> int:
    found = {int(m.group(1)) for k in keys for m in [re.match(pattern, k)] if m}
    return max(found) + 1 if found else 0


def suggested_config(parts: Dict[str, Dict[str, torch.Tensor]], config: dict) -> dict:
    """LlavaModel arguments read off the tensors' shapes and config.json.

    Head counts are not in the shapes: they come from config.json (the language model's
    always is; the vision tower's only in TinyLLaVA's vision_config), else 64-wide heads
    are assumed and flagged in ``assumed``.
    """
    vision, lm = parts['vision'], parts['causal_lm']
    assumed = []
    is_clip = 'vision_model.embeddings.class_embedding' in vision
    patch = vision['vision_model.embeddings.patch_embedding.weight']
    width, patch_size = int(patch.shape[0]), int(patch.shape[-1])
    positions = int(vision['vision_model.embeddings.position_embedding.weight'].shape[0])
    grid = int(round((positions - (1 if is_clip else 0)) ** 0.5))
    v_cfg_json = config.get('vision_config') or {}
    heads = v_cfg_json.get('num_attention_heads')
    if heads is None:
        heads = max(1, width // 64)
        assumed.append('vision_config.num_attention_heads')
    layers = _count(vision, r'vision_model\.encoder\.layers\.(\d+)\.')
    v_cfg = dict(model_type='clip_vision_model' if is_clip else 'siglip_vision_model',
                 hidden_size=width, num_hidden_layers=layers,
                 intermediate_size=int(vision['vision_model.encoder.layers.0.mlp.fc1.weight'].shape[0]),
                 num_attention_heads=int(heads), image_size=grid * patch_size, patch_size=patch_size)
    for name in ('hidden_act', 'layer_norm_eps'):
        if name in v_cfg_json:
            v_cfg[name] = v_cfg_json[name]
    embed = lm['model.embed_tokens.weight']
    text_type = str(_nested(config, 'model_type', default='qwen2'))
    text_type = 'llama' if 'llama' in text_type else 'qwen2'
    if 'tinyllava' == config.get('model_type') and config.get('text_config'):
        text_type = 'llama' if 'llama' in config['text_config'].get('model_type', '') else 'qwen2'
    t_cfg = dict(model_type=text_type, vocab_size=int(embed.shape[0]), hidden_size=int(embed.shape[1]),
                 num_hidden_layers=_count(lm, r'model\.layers\.(\d+)\.'),
                 intermediate_size=int(lm['model.layers.0.mlp.gate_proj.weight'].shape[0]))
    for name in ('num_attention_heads', 'num_key_value_heads', 'max_position_embeddings',
                 'rope_theta', 'rms_norm_eps'):
        value = _nested(config, name)
        if value is not None:
            t_cfg[name] = value
    if 'num_attention_heads' not in t_cfg:
        t_cfg['num_attention_heads'] = max(1, t_cfg['hidden_size'] // 128)
        assumed.append('text_config.num_attention_heads')
    t_cfg['tie_word_embeddings'] = lm['lm_head.weight'] is embed
    layer = _nested(config, 'mm_vision_select_layer', 'vision_feature_layer', default=-2)
    select = _nested(config, 'mm_vision_select_feature', 'vision_feature_select_strategy',
                     default='patch')
    strategy = {'patch': 'default', 'cls_patch': 'full', 'default': 'default', 'full': 'full'}.get(
        select, select)
    out = dict(vision_config=v_cfg, text_config=t_cfg, vision_feature_layer=int(layer),
               vision_feature_select_strategy=strategy, projector_hidden_act='gelu')
    if assumed:
        out['assumed'] = assumed
    return out


# ----------------------------------------------------------------------------- target
def _tiny_llava(vision_type: str):
    """A tiny :class:`~mmkd.models.task_models.llava_parts.LlavaParts` (what
    ``LlavaModel.hf_model`` is) on the meta device: its names on the installed
    transformers."""
    from transformers import LlavaConfig

    from mmkd.models.task_models.llava_parts import LlavaParts
    v = dict(model_type=vision_type, hidden_size=8, intermediate_size=8, num_hidden_layers=1,
             num_attention_heads=1, image_size=8, patch_size=4)
    t = dict(model_type='qwen2', hidden_size=8, intermediate_size=8, num_hidden_layers=1,
             num_attention_heads=1, num_key_value_heads=1, vocab_size=16, tie_word_embeddings=True,
             sliding_window=None)
    with torch.device('meta'):
        return LlavaParts(LlavaConfig(vision_config=v, text_config=t, image_token_index=3))


def _pattern(key: str) -> str:
    return re.sub(r'\.\d+\.', '.N.', key)


def assemble(parts: Dict[str, Dict[str, torch.Tensor]], hf, shown: str,
             vision_type: str) -> Dict[str, torch.Tensor]:
    """The mmkd state dict (``hf_model.`` + the installed transformers' names)."""
    from mmkd.models.task_models.hf_vision import non_persistent_buffers
    from mmkd.models.task_models.llava import causal_lm_view, llava_part_prefixes
    from mmkd.models.task_models.llava_parts import vision_layout
    prefixes = llava_part_prefixes(hf)
    tower_buffers = non_persistent_buffers(hf.vision_tower)
    # the installed tower's names: with the vision_model. level up to transformers 4.x
    parts = dict(parts, vision=vision_layout(parts['vision'], hf.vision_tower))
    known = dict(vision={_pattern(k) for k in hf.vision_tower.state_dict()},
                 projector={_pattern(k) for k in hf.multi_modal_projector.state_dict()},
                 causal_lm={_pattern(k) for k in causal_lm_view(hf).state_dict()})
    where = dict(vision=prefixes['vision_tower'], projector=prefixes['projector'])
    out = {}
    for part, tensors in parts.items():
        if part == 'causal_lm':  # rotary caches saved by transformers < 4.35, recomputed now
            tensors = {k: v for k, v in tensors.items() if not k.endswith('rotary_emb.inv_freq')}
        strange = sorted(k for k in tensors
                         if _pattern(k) not in known[part] and k not in tower_buffers)
        if strange:
            moe = any('expert' in k or 'deepspeed_moe' in k or '.wg.' in k for k in strange)
            why = (' They are mixture-of-experts tensors: a sparse LLaVA-MoD student has no dense '
                   'LlavaModel form; convert the dense teacher (or the dense stage-1 student).'
                   if moe else '')
            raise ConversionError(
                f'{shown}: {len(strange)} {part} tensors have no counterpart in transformers\' '
                f'{vision_type} / Qwen2 / LLaMA LLaVA: {strange[:6]}.{why}')
        for k, v in tensors.items():
            if part == 'vision' and k in tower_buffers:
                continue  # e.g. embeddings.position_ids: recomputed by transformers
            if part == 'causal_lm':
                target = (prefixes['lm_head'] + k[len('lm_head.'):] if k.startswith('lm_head.')
                          else prefixes['decoder'] + k[len('model.'):])
            else:
                target = where[part] + k
            out['hf_model.' + target] = v
    return out


def _config_model(cfg_path: str):
    """The LlavaModel of an mmkd config, built on the meta device."""
    from mmengine.config import Config

    import mmkd  # noqa: F401  (registers the modules)
    from mmkd.registry import MODELS
    from mmkd.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(cfg_path)
    model_cfg = cfg.get('model')
    for name in ('teacher', 'architecture'):
        sub = model_cfg.get(name) if model_cfg is not None else None
        if isinstance(sub, dict) and 'LlavaModel' in str(sub.get('type', '')):
            model_cfg, where = sub, f'model.{name}'
            break
    else:
        where = 'model'
        if model_cfg is None or 'LlavaModel' not in str(model_cfg.get('type', '')):
            raise ConversionError(f'--config {cfg_path!r}: neither model.teacher, model.architecture '
                                  'nor model is a LlavaModel')
    model_cfg = dict(model_cfg)
    model_cfg.pop('pretrained', None)  # the weights are what is being converted
    model_cfg.setdefault('_scope_', 'mmkd')
    with torch.device('meta'):
        return MODELS.build(model_cfg), where


def check_against(state: Dict[str, torch.Tensor], model, where: str, cfg_path: str,
                  shown: str) -> None:
    own = model.state_dict()
    missing = sorted(k for k in own if k not in state)
    unexpected = sorted(k for k in state if k not in own)
    shapes = [f'{k}: converted {tuple(state[k].shape)} vs config {tuple(v.shape)}'
              for k, v in own.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        raise ConversionError(
            f'{shown} does not fit {where} of --config {cfg_path!r}: {len(missing)} missing '
            f'{missing[:5]}, {len(unexpected)} unexpected {unexpected[:5]}, {len(shapes)} of other '
            f'shapes {shapes[:4]}. Set the config\'s vision_config / text_config to the '
            'checkpoint\'s sizes (printed below as the suggested config)')


def convert(src: str, config_path: Optional[str] = None, vision_tower: Optional[str] = None,
            layout: str = 'auto') -> Tuple[Dict[str, torch.Tensor], dict]:
    """(mmkd state dict, meta) of the official checkpoint ``src``."""
    state, config, shown = read_input(src)
    if layout == 'auto':
        layout = detect_layout(state, shown)
    elif layout not in LAYOUTS:
        raise ConversionError(f'--layout {layout!r}; valid: auto, {", ".join(LAYOUTS)}')
    parts = split_parts(state, layout, config, shown, vision_tower)
    vision_type = ('clip_vision_model' if 'vision_model.embeddings.class_embedding' in parts['vision']
                   else 'siglip_vision_model')
    suggested = suggested_config(parts, config)
    out = assemble(parts, _tiny_llava(vision_type), shown, vision_type)
    import transformers
    meta = dict(converted_from=osp.abspath(src), layout=layout, llava_config=suggested,
                transformers_version=transformers.__version__,
                transformers_layout=_layout_name(_tiny_llava(vision_type)))
    if config_path is not None:
        model, where = _config_model(config_path)
        check_against(out, model, where, config_path, shown)
        meta['checked_against'] = f'{where} of {config_path}'
    return out, meta


def _layout_name(hf) -> str:
    from mmkd.models.task_models.llava import LLAVA_LAYOUTS, llava_part_prefixes
    prefixes = llava_part_prefixes(hf)
    name = next((name for name, p in LLAVA_LAYOUTS.items() if p == prefixes), str(prefixes))
    level = 'with' if hasattr(hf.vision_tower, 'vision_model') else 'without'
    return f'{name}, vision tower {level} vision_model.'


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', metavar='IN', help='official checkpoint folder or weights file')
    parser.add_argument('dst', metavar='OUT', help='mmkd checkpoint to write (.pth)')
    parser.add_argument('--config', default=None,
                        help='mmkd config whose LlavaModel must load OUT strictly')
    parser.add_argument('--vision-tower', default=None,
                        help='CLIP / SigLIP save_pretrained folder, when IN has no vision tower')
    parser.add_argument('--layout', default='auto', choices=['auto', *LAYOUTS],
                        help='layout of IN (default: found from the tensor names)')
    args = parser.parse_args(argv)
    from mmkd.utils.checkpoint import CheckpointFileError, UnsafeCheckpointError
    try:
        state, meta = convert(args.src, args.config, args.vision_tower, args.layout)
    except (FileNotFoundError, CheckpointFileError, UnsafeCheckpointError, ConversionError,
            KeyError) as err:
        raise SystemExit(f'error: {err}') from None
    from mmkd.engine.atomic_backend import atomic_torch_save
    atomic_torch_save({'state_dict': state, 'meta': meta}, args.dst)
    suggested = dict(meta['llava_config'])
    assumed = suggested.pop('assumed', [])
    print(f'wrote {len(state)} tensors ({meta["layout"]} layout -> mmkd LlavaModel, '
          f'{meta["transformers_layout"]}) to {args.dst}')
    print('LlavaModel arguments of this checkpoint (teacher=dict(type=\'LlavaModel\', ...)):')
    for k, v in suggested.items():
        print(f'    {k}={v!r},')
    if assumed:
        print(f'  not in config.json, assumed (64-wide heads), check: {assumed}')
    if 'checked_against' in meta:
        print(f'checked: loads strictly into {meta["checked_against"]}')


if __name__ == '__main__':
    from mmkd.engine.runner_checkpoints import run_cli
    run_cli(main)
