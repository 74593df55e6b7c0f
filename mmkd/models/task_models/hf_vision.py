"""A transformers vision encoder (ViT, DINOv2, CLIP / SigLIP vision, ...) as a ``BaseModel``.

``HFVisionModel`` is a feature extractor for distillation: built from a local folder
written by ``save_pretrained`` (never from the hub) or from a config (random
weights), its ``'tensor'`` mode returns the token sequence, a pooled feature and the
patch tokens as a map, and every transformers submodule can be recorded by its path
(``model.encoder.layer.3`` for ViT / DINOv2, ``model.vision_model.encoder.layers.3``
for CLIP / SigLIP on transformers 4.x, ``model.encoder.layers.3`` on 5.x). It is the
transformers route of ``docs/user_guides/teachers.md``.
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement
from torch import nn

from mmkd.registry import MODELS

_WEIGHT_FILES = ('model.safetensors', 'model.safetensors.index.json', 'pytorch_model.bin',
                 'pytorch_model.bin.index.json')


def _size_pair(size: Optional[Union[int, Sequence[int]]]) -> Optional[tuple]:
    if size is None:
        return None
    if isinstance(size, int):
        return (size, size)
    return tuple(int(s) for s in size)


def check_local_folder(path: str, key: str = 'pretrained_path') -> str:
    """Return ``path`` if it is a transformers model folder, else raise naming ``key``.

    A string that is not an existing folder is refused at once (no hub look-up, which
    would retry for many seconds offline). The folder must hold ``config.json`` and
    weights (``model.safetensors`` or ``pytorch_model.bin``, sharded or not).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f'{key} must be a local folder path, got {type(path).__name__}')
    path = os.fspath(path)
    if not osp.isdir(path):
        raise FileNotFoundError(
            f'{key}={path!r} is not a local folder. mmkd never downloads from the Hugging '
            'Face hub: write the model into a folder with `model.save_pretrained(folder)` '
            '(or `huggingface-cli download NAME --local-dir folder` where the hub is '
            'reachable) and give that folder, or build random weights with '
            "config=dict(model_type='vit', ...)")
    files = sorted(os.listdir(path))
    if 'config.json' not in files:
        raise FileNotFoundError(f'{key}={path!r} is not a transformers model folder: it has no '
                                f'config.json (it holds {files[:10]})')
    if not any(f in files for f in _WEIGHT_FILES):
        raise FileNotFoundError(f'{key}={path!r} holds config.json but no weights (one of '
                                f'{list(_WEIGHT_FILES)}); it holds {files[:10]}')
    return path


def weight_files(folder: str, key: str = 'pretrained_path') -> List[str]:
    """The weight files of a ``save_pretrained`` folder, in load order.

    A shard index (``model.safetensors.index.json`` / ``pytorch_model.bin.index.json``)
    names the shards; otherwise ``model.safetensors`` or ``pytorch_model.bin``; otherwise
    every ``*.safetensors`` (then every ``pytorch_model*.bin``) of the folder.

    Raises:
        FileNotFoundError: no weights, or a shard the index names is not there; the
            message names ``key``, the folder and what it holds.
    """
    import glob
    import json
    for index in ('model.safetensors.index.json', 'pytorch_model.bin.index.json'):
        index_path = osp.join(folder, index)
        if not osp.isfile(index_path):
            continue
        try:
            with open(index_path) as f:
                shards = sorted(set(json.load(f)['weight_map'].values()))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ValueError(f'{key}={folder!r}: {index} is not a shard index (a json with a '
                             f'weight_map of tensor name -> shard file): {err}') from None
        absent = [s for s in shards if not osp.isfile(osp.join(folder, s))]
        if absent:
            raise FileNotFoundError(f'{key}={folder!r}: {index} names shards that are not in the '
                                    f'folder: {absent[:5]} (an incomplete download or copy?)')
        return [osp.join(folder, s) for s in shards]
    for single in ('model.safetensors', 'pytorch_model.bin'):
        if osp.isfile(osp.join(folder, single)):
            return [osp.join(folder, single)]
    files = sorted(glob.glob(osp.join(folder, '*.safetensors'))) or sorted(
        glob.glob(osp.join(folder, 'pytorch_model*.bin')))
    if not files:
        raise FileNotFoundError(f'{key}={folder!r}: the folder holds no weights (model.safetensors, '
                                'pytorch_model.bin, sharded or not); it holds '
                                f'{sorted(os.listdir(folder))[:10]}')
    return files


def read_weights(path: str, key: str = 'pretrained_path') -> Dict[str, torch.Tensor]:
    """The tensors of a ``save_pretrained`` folder or of one weights file.

    Every file is read by mmkd's safe loader (:func:`mmkd.utils.checkpoint.load_state_dict_file`:
    safetensors, or ``torch.load(weights_only=True)`` with the allow-list).
    """
    from mmkd.utils.checkpoint import load_state_dict_file
    files = weight_files(path, key) if osp.isdir(path) else [path]
    state: Dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_state_dict_file(f, key))
    return state


def non_persistent_buffers(module: nn.Module) -> set:
    """Names (state-dict style) of the buffers ``module`` keeps out of its state dict.

    Older checkpoints hold some of them, e.g. ``vision_model.embeddings.position_ids`` of
    CLIP-L/336 checkpoints written before transformers made it non-persistent; they are
    recomputed at construction, so a loader drops them from the file.
    """
    own = set(module.state_dict())
    return {name for name, _ in module.named_buffers() if name not in own}


# keys of a two-tower (CLIP / SigLIP) checkpoint outside the vision tower
_OTHER_HALF = ('text_model.', 'text_projection.', 'visual_projection.', 'logit_scale',
               'logit_bias', 'text_embed_dim')


def transformers_renamed(model: nn.Module,
                         state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The file's keys renamed as transformers' own loading renames them for ``model``.

    transformers >= 5 renamed modules of several models (DINOv2's
    ``attention.attention.query`` is ``attention.q_proj``, CLIPVisionModel / SiglipVisionModel
    lost the ``vision_model.`` level) and keeps writing, and reading, the old names through
    its checkpoint conversion mapping. Only its pure renamings are applied here (no tensor
    is changed); on transformers 4.x, which has no such mapping, ``state`` is returned as is.
    """
    try:
        from transformers.conversion_mapping import get_model_conversion_mapping
        from transformers.core_model_loading import WeightRenaming
    except ImportError:  # transformers < 5: module names are the checkpoints' names
        return state
    try:
        renamings = [t for t in get_model_conversion_mapping(model)
                     if isinstance(t, WeightRenaming)]
    except Exception:  # pragma: no cover - a model transformers has no mapping logic for
        return state
    if not renamings:
        return state
    own = model.state_dict()
    out = {}
    for key, value in state.items():
        new = key
        if key not in own:
            for renaming in renamings:
                new, _ = renaming.rename_source_key(new)
        out[new if new not in out else key] = value
    return out


def match_vision_level(own: set, state: Dict[str, torch.Tensor],
                       buffers: set = frozenset()) -> Dict[str, torch.Tensor]:
    """Add or drop the ``vision_model.`` level of the keys that, so changed, are the
    model's (``own`` keys or non-persistent ``buffers``): CLIP / SigLIP vision models have it
    up to transformers 4.x, not from 5.0 on; a two-tower folder has it on every version."""
    level = 'vision_model.'
    known = set(own) | set(buffers)
    out = {}
    for key, value in state.items():
        if key not in known:
            if key.startswith(level) and key[len(level):] in known:
                key = key[len(level):]
            elif level + key in known:
                key = level + key
        out[key] = value
    return out


def load_vision_state(model: nn.Module, state: Dict[str, torch.Tensor], shown: str) -> List[str]:
    """Load a folder's tensors into a transformers model strictly; return the dropped keys.

    Dropped, and listed in the log: the other half of a two-tower checkpoint (text
    tower, projections, logit scale / bias) and buffers that the installed transformers
    no longer saves (``embeddings.position_ids``). A file written under the model's
    ``base_model_prefix`` (``vit.``, ``dinov2.``: a classifier's folder) has it stripped.

    Raises:
        KeyError: tensors the model needs are not in the file (naming them, the file
            and the model class), or tensors of other shapes.
    """
    own = model.state_dict()
    state = transformers_renamed(model, state)
    prefix = getattr(model, 'base_model_prefix', '') or ''
    if prefix and not any(k in own for k in state) and any(
            k.startswith(prefix + '.') and k[len(prefix) + 1:] in own for k in state):
        state = {k[len(prefix) + 1:]: v for k, v in state.items() if k.startswith(prefix + '.')}
    buffers = non_persistent_buffers(model)
    state = match_vision_level(set(own), state, buffers)
    dropped = sorted(k for k in state if k not in own and (
        k in buffers or k.startswith(_OTHER_HALF)))
    unexpected = sorted(k for k in state if k not in own and k not in dropped)
    missing = sorted(k for k in own if k not in state)
    name = type(model).__name__
    if missing:
        if len(missing) == len(own):
            hint = ('none of its tensors has a name of the model: another layout (e.g. a LLaVA '
                    'checkpoint, `model.vision_tower.vision_tower.*`: convert it with '
                    'tools/model_converters/llava_official_to_mmkd.py) or another model')
        elif all(k.startswith('pooler.') for k in missing):
            hint = ('a model saved without a pooler (a classifier\'s encoder): build it '
                    'without one, model_kwargs=dict(add_pooling_layer=False)')
        else:
            hint = 'a checkpoint of another model or an incomplete file'

        raise KeyError(f'{shown}: the weights lack {len(missing)} of the {len(own)} tensors of '
                       f'{name}: {missing[:8]}{"..." if len(missing) > 8 else ""}; the file holds '
                       f'e.g. {sorted(state)[:5]}. It is {hint}; pass a folder written by '
                       f'save_pretrained of {name} (or of the two-tower model)')
    shapes = [f'{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}'
              for k, v in own.items() if tuple(state[k].shape) != tuple(v.shape)]
    if shapes:
        raise KeyError(f'{shown}: {len(shapes)} tensors have other shapes than in {name} built '
                       f'from its config.json, e.g. {shapes[:4]}')
    model.load_state_dict({k: state[k] for k in own}, strict=True)
    from mmengine.logging import print_log
    if dropped:
        print_log(f'{shown}: kept the {len(own)} tensors of {name}; dropped {len(dropped)} '
                  f'(other tower, unsaved buffers): {dropped[:6]}{"..." if len(dropped) > 6 else ""}',
                  logger='current', level=20)
    if unexpected:
        print_log(f'{shown}: {len(unexpected)} tensors of the file are not in {name} and were not '
                  f'loaded: {unexpected[:8]}', logger='current', level=30)
    return dropped


def _model_class(name: str, key: str):
    import transformers
    cls = getattr(transformers, name, None)
    if cls is None or not hasattr(cls, 'from_pretrained'):
        raise KeyError(f"{key}={name!r} is not a transformers model class; e.g. 'AutoModel', "
                       "'ViTModel', 'Dinov2Model', 'CLIPVisionModel', 'SiglipVisionModel'")
    return cls


def _vision_class(config, model_class: str, key: str):
    """The class to build: ``model_class``, or the vision tower's for a composite config.

    ``AutoModel`` on a CLIP / SigLIP config would build the two-tower model, whose
    forward needs text; its ``vision_config`` names the vision-only class instead.
    """
    if model_class != 'AutoModel':
        return _model_class(model_class, key)
    vision_config = getattr(config, 'vision_config', None)
    if vision_config is None:
        return _model_class('AutoModel', key)
    from transformers.models.auto.modeling_auto import MODEL_MAPPING
    try:
        return MODEL_MAPPING[type(vision_config)]
    except KeyError:
        raise ValueError(
            f'{key}: the {config.model_type!r} config has a vision_config of type '
            f'{vision_config.model_type!r} without a vision-only model class; set '
            "model_class to the transformers class of its vision tower") from None


def _build_config(config, key: str):
    from transformers import AutoConfig, PretrainedConfig
    if isinstance(config, PretrainedConfig):
        return config
    if not isinstance(config, dict) or 'model_type' not in config:
        raise TypeError(f"{key} must be a transformers config or a dict with 'model_type' "
                        f"(e.g. dict(model_type='vit', hidden_size=192, ...)), got {config!r}")
    kwargs = dict(config)
    model_type = kwargs.pop('model_type')
    try:
        return AutoConfig.for_model(model_type, **kwargs)
    except ValueError as err:
        raise ValueError(f'{key}.model_type={model_type!r}: {err}') from None


@MODELS.register_module()
class HFVisionModel(BaseModel):
    """A transformers vision encoder, as a teacher (or frozen feature extractor).

    Built from exactly one of:

    * ``pretrained_path``: a local folder written by ``save_pretrained`` (weights and
      ``config.json``; safetensors or ``pytorch_model.bin``, sharded or not). The model
      is built from ``config.json`` and the weights are read by mmkd's safe loader and
      loaded strictly: a missing tensor is an error naming it (``from_pretrained``
      would initialise it at random). A folder of a two-tower model (CLIP, SigLIP,
      ``CLIPModel`` / ``SiglipModel``) gives its vision tower, the text half is dropped;
      buffers that transformers no longer saves (``embeddings.position_ids`` of older
      CLIP checkpoints) are dropped too.
    * ``config``: a ``transformers.PretrainedConfig`` or a dict with ``model_type``
      and sizes (``dict(model_type='dinov2', hidden_size=384, num_hidden_layers=12,
      ...)``), random weights; load trained ones with ``teacher_ckpt``.

    Inputs are an image batch ``(N, 3, H, W)`` as the data preprocessor makes it (the
    student's, or ``teacher_data_preprocessor`` with the model's mean/std).

    Modes:
        * ``'tensor'``: ``dict(tokens=(N, L, C), pooled=(N, C), patch_map=(N, C, h, w))``:
          the last hidden state, the model's pooled output (its pooler, or the mean
          of the tokens when it has none) and the last ``h * w`` tokens (the patches;
          class / register tokens come first) as a map, ``h = H // patch_size``.
        * ``'predict'``: each data sample gets ``img_embed`` (the pooled feature).
        * ``'loss'``: not available (no task loss); a transformers classifier as a
          student is mmpretrain's ``HuggingFaceClassifier``.

    Recording points (``ModuleOutputs`` sources): ``tokens_tap``, ``pooled_tap``,
    ``patch_map_tap``, and any transformers submodule under ``model.`` (a layer
    returns a tuple: ``data_idx=0`` is its hidden state).

    The weights are those of the folder (or of the config's own initialisation):
    ``init_weights()`` leaves them untouched, unlike mmengine's default, which would
    re-run transformers' initialisation.

    Args:
        pretrained_path (str, optional): local folder with ``config.json`` and weights.
        config (dict | PretrainedConfig, optional): config for random weights.
        model_class (str): transformers class to build (default ``'AutoModel'``; for a
            composite config, its vision tower's class).
        model_kwargs (dict, optional): passed to ``from_pretrained`` / the model's
            constructor (e.g. ``add_pooling_layer=False``, ``attn_implementation='eager'``).
        resize_to (int | tuple, optional): bilinear resize of the inputs to this size
            before the model (a teacher trained at 224 for a student at another size).
        interpolate_pos_encoding (bool): pass ``interpolate_pos_encoding=True`` to the
            model (ViT, CLIP, SigLIP) for inputs of another size than the config's.
        data_preprocessor (dict, optional): used when this model is trained or tested
            on its own; a teacher gets its inputs from the algorithm.
        init_cfg (dict, optional): mmengine init config (not applied to the
            transformers weights).
    """

    def __init__(self,
                 pretrained_path: Optional[str] = None,
                 config: Optional[Union[dict, object]] = None,
                 model_class: str = 'AutoModel',
                 model_kwargs: Optional[dict] = None,
                 resize_to: Optional[Union[int, Sequence[int]]] = None,
                 interpolate_pos_encoding: bool = False,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if (pretrained_path is None) == (config is None):
            raise ValueError('HFVisionModel needs exactly one of pretrained_path (a local folder '
                             'written by save_pretrained) and config (a dict with model_type, for '
                             f'random weights); got pretrained_path={pretrained_path!r}, '
                             f'config={config!r}')
        kwargs = dict(model_kwargs or {})
        if pretrained_path is not None:
            self.model = self._from_folder(pretrained_path, model_class, kwargs)
        else:
            self.model = self._build(_build_config(config, 'config'), model_class, kwargs)
        self.pretrained_path = pretrained_path
        self.resize_to = _size_pair(resize_to)
        self.interpolate_pos_encoding = interpolate_pos_encoding
        patch = getattr(self.model.config, 'patch_size', None)
        self.patch_size = _size_pair(patch) if patch is not None else None
        # identity taps: what distillers record (ModuleOutputs sources)
        self.tokens_tap = nn.Identity()
        self.pooled_tap = nn.Identity()
        self.patch_map_tap = nn.Identity()

    @staticmethod
    def _build(cfg, model_class: str, kwargs: dict) -> nn.Module:
        """The model of ``cfg`` (its vision tower's for a two-tower config), random weights."""
        cls = _vision_class(cfg, model_class, 'model_class')
        if getattr(cfg, 'vision_config', None) is not None and \
                not isinstance(cfg, cls.config_class):
            cfg = cfg.vision_config
        try:
            return cls._from_config(cfg, **kwargs) if cls.__name__ != 'AutoModel' \
                else cls.from_config(cfg, **kwargs)
        except TypeError as err:
            raise TypeError(f'model_kwargs={kwargs!r}: {err}') from None

    @classmethod
    def _from_folder(cls, path: str, model_class: str, kwargs: dict) -> nn.Module:
        """Build from the folder's config.json, then load its weights strictly.

        The weights are read by mmkd's safe loader (not ``from_pretrained``, which
        initialises missing tensors at random with only a warning), so a folder that
        lacks a tensor fails naming it.
        """
        from transformers import AutoConfig
        path = check_local_folder(path, 'pretrained_path')
        try:
            cfg = AutoConfig.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError, KeyError) as err:
            raise ValueError(f'pretrained_path={path!r}: config.json cannot be read by '
                             f'transformers: {err}') from None
        model = cls._build(cfg, model_class, kwargs)
        files = weight_files(path, 'pretrained_path')
        shown = (f'pretrained_path={path!r} (weights '
                 f'{[osp.basename(f) for f in files][:4]}{"..." if len(files) > 4 else ""})')
        load_vision_state(model, read_weights(path, 'pretrained_path'), shown)
        return model.eval()  # as from_pretrained leaves it

    def init_weights(self) -> None:
        """Keep the loaded weights: do not descend into the transformers model."""
        self._is_init = True

    # Features ---------------------------------------------------------------------
    def _pixel_values(self, inputs) -> torch.Tensor:
        if isinstance(inputs, dict):  # an image-text batch: take the images
            inputs = inputs.get('img', inputs.get('pixel_values'))
        if not torch.is_tensor(inputs) or inputs.dim() != 4:
            raise TypeError('HFVisionModel expects an image batch (N, 3, H, W), got '
                            f'{type(inputs).__name__}'
                            f'{tuple(inputs.shape) if torch.is_tensor(inputs) else ""}')
        if self.resize_to is not None and tuple(inputs.shape[-2:]) != self.resize_to:
            inputs = F.interpolate(inputs if inputs.is_floating_point() else inputs.float(),
                                   size=self.resize_to, mode='bilinear',
                                   align_corners=False)
        return inputs

    def extract(self, inputs) -> Dict[str, torch.Tensor]:
        """Tokens, pooled feature and patch map of an image batch, through the taps."""
        pixels = self._pixel_values(inputs)
        kwargs = dict(interpolate_pos_encoding=True) if self.interpolate_pos_encoding else {}
        try:
            out = self.model(pixel_values=pixels, **kwargs)
        except (ValueError, RuntimeError) as err:
            # ViT / CLIP refuse another size (ValueError), SigLIP fails in the position
            # embedding (RuntimeError): name the two remedies when the size is the cause
            trained = _size_pair(getattr(self.model.config, 'image_size', None))
            if type(err) not in (ValueError, RuntimeError) or trained is None or \
                    trained == tuple(pixels.shape[-2:]):
                raise
            raise type(err)(
                f'{type(self.model).__name__} (config image_size {trained}) on inputs of size '
                f"{tuple(pixels.shape[-2:])}: {str(err).rstrip('.')}. Set resize_to={trained[0]} or "
                'interpolate_pos_encoding=True') from None
        tokens = out.last_hidden_state if hasattr(out, 'last_hidden_state') else out[0]
        pooled = getattr(out, 'pooler_output', None)
        if pooled is None:
            pooled = tokens.mean(dim=1)
        patch_map = None
        if self.patch_size is not None and tokens.dim() == 3:
            h = pixels.shape[-2] // self.patch_size[0]
            w = pixels.shape[-1] // self.patch_size[1]
            if 0 < h * w <= tokens.shape[1]:
                patch_map = tokens[:, tokens.shape[1] - h * w:].transpose(1, 2).reshape(
                    tokens.shape[0], tokens.shape[2], h, w)
        tokens = self.tokens_tap(tokens)
        pooled = self.pooled_tap(pooled)
        if patch_map is not None:
            patch_map = self.patch_map_tap(patch_map)
        return dict(tokens=tokens, pooled=pooled, patch_map=patch_map)

    # Modes ------------------------------------------------------------------------
    def forward(self, inputs, data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'tensor'):
        if mode == 'tensor':
            return self.extract(inputs)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'loss':
            raise ValueError(
                "HFVisionModel has no task loss (mode='loss'): it is a feature extractor for "
                'teachers. As a student, train it by distillation only '
                '(SingleTeacherDistill(calculate_student_loss=False)), or use mmpretrain\'s '
                "HuggingFaceClassifier for a transformers classifier")
        raise ValueError(f"mode={mode!r}; valid: 'tensor', 'predict', 'loss'")

    @torch.no_grad()
    def predict(self, inputs, data_samples=None) -> List[BaseDataElement]:
        pooled = self.extract(inputs)['pooled']
        samples = data_samples if data_samples is not None else [
            BaseDataElement() for _ in range(pooled.shape[0])]
        for sample, embed in zip(samples, pooled):
            sample.img_embed = embed
        return samples
