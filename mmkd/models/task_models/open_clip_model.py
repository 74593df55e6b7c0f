"""Any open_clip model as an mmengine ``BaseModel`` (image-text batches).

``OpenCLIPModel`` trains with CLIP's contrastive loss, predicts image/text embeddings
and zero-shot class scores, and can carry TinyCLIP's learnable structure masks
(automatic weight inheritance). It is what ``tools/train.py`` trains as a CLIP
teacher or student and what ``SingleTeacherDistill`` distils (TinyCLIP configs in
``configs/tinyclip``).
"""
from __future__ import annotations

import copy
import math
from typing import Dict, List, Optional, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement
from torch import nn

from mmkd.registry import MODELS

from ..losses.affinity_mimicking import clip_contrastive_loss
from ..preprocessors.image_text_data_preprocessor import build_image_text_preprocessor


def _load_clip_state(path: str, key: str) -> Dict[str, torch.Tensor]:
    """The open_clip state dict inside a checkpoint of this wrapper, of an mmkd
    algorithm (``architecture.`` prefix) or a raw open_clip checkpoint."""
    from mmkd.utils.checkpoint import load_state_dict_file
    state = load_state_dict_file(path, key)
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
    if any(k.startswith('architecture.') for k in state):
        state = {k[len('architecture.'):]: v for k, v in state.items() if k.startswith('architecture.')}
    if any(k.startswith('clip.') for k in state):
        state = {k[len('clip.'):]: v for k, v in state.items() if k.startswith('clip.')}
    return state


_WEIGHT_SUFFIXES = ('.pt', '.pth', '.bin', '.safetensors', '.ckpt')


def _is_local_weights(pretrained: Optional[str]) -> bool:
    import os.path as osp
    return isinstance(pretrained, str) and (osp.exists(pretrained) or '/' in pretrained or
                                            pretrained.endswith(_WEIGHT_SUFFIXES))


def load_open_clip_file(clip: nn.Module, path: str, key: str = 'pretrained') -> None:
    """Load an open_clip checkpoint file into ``clip`` strictly, through mmkd's safe loader.

    Reads what open_clip writes: a plain state dict (``.pt`` / ``.bin`` / ``.safetensors``,
    the files of the hub) and a training checkpoint (``{'epoch', 'name', 'state_dict':
    {'module.<key>': ...}, 'optimizer', ...}``; ``module.`` is DDP's prefix), as well as
    checkpoints of this wrapper and of mmkd runs. As open_clip's own loader does, an old
    text-tower layout is converted for models with a custom text tower and a missing
    ``logit_bias`` is zero; buffers open_clip keeps out of the state dict (``attn_mask``)
    are dropped.

    Raises:
        RuntimeError: missing or unexpected tensors, or tensors of other shapes (naming
            ``key``, the file and the first keys): the file is of another model.
    """
    from mmkd.utils.checkpoint import named

    from .hf_vision import non_persistent_buffers
    state = _load_clip_state(path, key)
    own = clip.state_dict()
    if 'positional_embedding' in state and 'positional_embedding' not in own and \
            any(k.startswith('text.') for k in own):
        from open_clip.model import convert_to_custom_text_state_dict
        state = convert_to_custom_text_state_dict(state)
    if 'logit_bias' in own and 'logit_bias' not in state:
        state['logit_bias'] = torch.zeros_like(own['logit_bias'])
    stale = non_persistent_buffers(clip)
    state = {k: v for k, v in state.items() if k not in stale}
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f'{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}' for k, v in own.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        raise RuntimeError(
            f'{named(key, path)} is not a checkpoint of this open_clip model '
            f'({type(clip).__name__}, {len(own)} tensors): {len(missing)} missing {missing[:6]}, '
            f'{len(unexpected)} unexpected {unexpected[:6]}, {len(shapes)} of other shapes '
            f'{shapes[:4]}. Give the model_name the file was trained with (open_clip checkpoint '
            "files: a state dict, or a training checkpoint with 'state_dict')")
    clip.load_state_dict(state, strict=True)


def _read_structure(value: Union[str, dict], key: str) -> dict:
    if isinstance(value, dict):
        return copy.deepcopy(dict(value))
    import os.path as osp

    from mmkd.utils.checkpoint import safe_torch_load
    if not isinstance(value, str) or not osp.isfile(value):
        raise FileNotFoundError(f'{key}={value!r} must be a structure dict or an existing pruned '
                                'checkpoint (written by tools/model_converters/tinyclip_inherit.py '
                                'prune)')
    meta = (safe_torch_load(value) or {}).get('meta') or {}
    if 'clip_structure' not in meta:
        raise KeyError(f'{key}={value!r} has no meta.clip_structure: it is not a pruned checkpoint '
                       'written by tools/model_converters/tinyclip_inherit.py prune')
    return meta['clip_structure']


def _zero_shot_texts(classes, templates) -> List[List[str]]:
    if classes == 'imagenet' or templates in ('openai', 'simple'):
        from open_clip import zero_shot_metadata as meta
        if classes == 'imagenet':
            classes = meta.IMAGENET_CLASSNAMES
        if templates == 'openai':
            templates = meta.OPENAI_IMAGENET_TEMPLATES
        elif templates == 'simple':
            templates = meta.SIMPLE_IMAGENET_TEMPLATES
    out = []
    for name in classes:
        out.append([t(name) if callable(t) else str(t).format(name) for t in templates])
    return out


@MODELS.register_module()
class OpenCLIPModel(BaseModel):
    """An open_clip CLIP model with image-text batches, built without any download.

    Inputs are ``dict(img=(N, 3, H, W) float, text=(N, L) token ids)`` as produced
    by :class:`~.image_text_data_preprocessor.ImageTextDataPreprocessor`.

    Modes:
        * ``'loss'``: ``contrastive_weight`` x CLIP's symmetric contrastive loss over the
          batch (gathered from all ranks), plus, with ``sparsity``, TinyCLIP's
          Lagrangian sparsity penalty (and logs of expected/target sparsity).
        * ``'predict'``: each data sample gets ``img_embed``/``text_embed`` (L2
          normalised) and, with ``zero_shot``, ``pred_score`` (softmax over the
          classes' prompt embeddings) and ``pred_label``.
        * ``'tensor'``: ``dict(image_features, text_features, logit_scale)``.

    Recording points for distillation (``ModuleOutputs`` sources): ``image_tap``
    (image embeddings before normalisation), ``text_tap`` and ``scale_tap`` (the
    logit scale, ``exp(logit_scale)``).

    Args:
        model_name (str, optional): an open_clip model name (``'ViT-B-32'``), built
            with ``pretrained`` (``None``: random init, no download).
        model_cfg (dict, optional): ``open_clip.model.CLIP`` arguments
            (``embed_dim``, ``vision_cfg``, ``text_cfg``, ...). Exactly one of
            ``model_name``/``model_cfg``.
        pretrained (str, optional): open_clip pretrained tag or local file (only with
            ``model_name``; a tag downloads on first use). A file is read by mmkd's safe
            loader and loaded strictly (:func:`load_open_clip_file`): a plain state dict
            (``.bin`` / ``.pt`` / ``.safetensors``) or open_clip's training checkpoint
            (``{'epoch', 'state_dict': {'module.<key>': ...}}``).
        tokenizer (dict, optional): tokenizer config (needed by ``zero_shot``), see
            :mod:`mmkd.text.caption_tokenizers`.
        zero_shot (dict, optional): ``dict(classes=[...] | 'imagenet', templates=[
            'a photo of a {}.', ...] | 'openai' | 'simple')``.
        contrastive_weight (float): weight of the contrastive loss in 'loss' mode
            (0 for a pure affinity-mimicking student).
        fixed_logit_scale (float, optional): freeze ``exp(logit_scale)`` at this value
            (TinyCLIP: 50); else it is learned and clamped at ``max_logit_scale``.
        max_logit_scale (float): CLIP's clamp of the learned scale (100).
        sparsity (dict, optional): TinyCLIP automatic inheritance: arguments of
            :class:`~.hard_concrete.CLIPSparsityMasks` (``target_sparsity``,
            ``start_sparsity``, ``warmup_iters``, ``prune_types``, ``towers``, ...).
        pruned_structure (dict | str, optional): build the pruned structure
            (a dict from :func:`~.clip_structure.structure_of`, or a pruned
            checkpoint whose ``meta.clip_structure`` holds it) from the full config.
        init_checkpoint (str, optional): weights loaded by ``init_weights()`` (the
            Runner calls it before training): a checkpoint of this wrapper, of an mmkd
            algorithm or raw open_clip weights, loaded strictly. TinyCLIP's inherited
            students start from the checkpoint of ``tinyclip_inherit.py``.
        data_preprocessor (dict, optional): default ``ImageTextDataPreprocessor``.
    """

    def __init__(self,
                 model_name: Optional[str] = None,
                 model_cfg: Optional[dict] = None,
                 pretrained: Optional[str] = None,
                 tokenizer: Optional[dict] = None,
                 zero_shot: Optional[dict] = None,
                 contrastive_weight: float = 1.0,
                 fixed_logit_scale: Optional[float] = None,
                 max_logit_scale: float = 100.0,
                 sparsity: Optional[dict] = None,
                 pruned_structure: Optional[Union[str, dict]] = None,
                 init_checkpoint: Optional[str] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=build_image_text_preprocessor(data_preprocessor),
                         init_cfg=init_cfg)
        if (model_name is None) == (model_cfg is None):
            raise ValueError('OpenCLIPModel needs exactly one of model_name (an open_clip model '
                             "name such as 'ViT-B-32') and model_cfg (open_clip.model.CLIP "
                             f'arguments); got model_name={model_name!r}, model_cfg={model_cfg!r}')
        if contrastive_weight < 0:
            raise ValueError(f'contrastive_weight={contrastive_weight} must be >= 0')
        if fixed_logit_scale is not None and fixed_logit_scale <= 0:
            raise ValueError(f'fixed_logit_scale={fixed_logit_scale} must be > 0')
        self.clip = self._build_clip(model_name, model_cfg, pretrained)
        self.model_name = model_name
        if pruned_structure is not None:
            from ..surgery.clip_structure import apply_structure
            self.clip = apply_structure(self.clip, _read_structure(pruned_structure, 'pruned_structure'))
        self.contrastive_weight = contrastive_weight
        self.fixed_logit_scale = fixed_logit_scale
        self.max_logit_scale = max_logit_scale
        if fixed_logit_scale is not None:
            self.clip.logit_scale.data.fill_(math.log(fixed_logit_scale))
            self.clip.logit_scale.requires_grad_(False)
        self.init_checkpoint = init_checkpoint

        self.tokenizer = None
        if tokenizer is not None:
            from mmkd.text.caption_tokenizers import build_tokenizer
            self.tokenizer = build_tokenizer(tokenizer, 'tokenizer')
            vocab = getattr(self.clip, 'vocab_size', None)
            if vocab is not None and self.tokenizer.vocab_size > vocab:
                raise ValueError(f'tokenizer has {self.tokenizer.vocab_size} tokens but the text '
                                 f'tower embeds only vocab_size={vocab}; raise text_cfg.vocab_size')
        self.zero_shot = None
        if zero_shot is not None:
            unknown = set(zero_shot) - {'classes', 'templates'}
            if unknown or 'classes' not in zero_shot:
                raise KeyError(f'zero_shot needs classes (and templates); unknown keys '
                               f'{sorted(unknown)}; valid: classes, templates')
            if self.tokenizer is None:
                raise ValueError('zero_shot needs a tokenizer to encode the class prompts; give '
                                 "tokenizer=dict(type='WordTokenizer' | 'OpenCLIPTokenizer', ...)")
            self.zero_shot = _zero_shot_texts(zero_shot['classes'], zero_shot.get('templates', ['{}']))
        self._class_embed = None

        self.l0_masks = None
        if sparsity is not None:
            from ..surgery.clip_structure import check_supported, structure_of
            from ..surgery.hard_concrete import CLIPSparsityMasks
            check_supported(self.clip, 'sparsity (automatic weight inheritance)')
            try:
                self.l0_masks = CLIPSparsityMasks(structure_of(self.clip), **sparsity)
            except TypeError as err:
                raise TypeError(f'sparsity: {err}') from None

        # identity taps: what distillers record (ModuleOutputs sources)
        self.image_tap = nn.Identity()
        self.text_tap = nn.Identity()
        self.scale_tap = nn.Identity()

    @staticmethod
    def _build_clip(model_name, model_cfg, pretrained) -> nn.Module:
        import open_clip  # optional heavy import
        if model_name is not None:
            if model_name not in open_clip.list_models():
                import difflib
                close = difflib.get_close_matches(model_name, open_clip.list_models(), n=5)
                raise KeyError(f'model_name={model_name!r} is not an open_clip model; closest: {close}')
            if _is_local_weights(pretrained):
                import os.path as osp
                if osp.isdir(pretrained):
                    raise FileNotFoundError(
                        f'pretrained={pretrained!r} is a folder; give the weights file in it '
                        '(open_clip_pytorch_model.bin, open_clip_model.safetensors, epoch_N.pt)')
                if not osp.isfile(pretrained):
                    raise FileNotFoundError(
                        f'pretrained={pretrained!r} does not exist: a local open_clip weights '
                        'file (.bin, .pt, .safetensors), or an open_clip tag of '
                        f'{model_name!r} ({open_clip.list_pretrained_tags_by_model(model_name)}; '
                        'a tag downloads)')
                # build at random, then read the file with mmkd's safe loader (open_clip's
                # own load would unpickle it by itself)
                clip = open_clip.create_model(model_name, pretrained=None)
                load_open_clip_file(clip, pretrained, 'pretrained')
                return clip
            return open_clip.create_model(model_name, pretrained=pretrained)
        if pretrained is not None:
            raise ValueError('pretrained is only valid with model_name; with model_cfg load '
                             'weights through init_checkpoint')
        cfg = dict(model_cfg)
        try:
            return open_clip.model.CLIP(**cfg)
        except TypeError as err:
            raise TypeError(f'model_cfg: {err}; valid keys: embed_dim, vision_cfg, text_cfg, '
                            'quick_gelu, init_logit_scale, init_logit_bias, ...') from None

    # Weights ----------------------------------------------------------------------
    def init_weights(self) -> None:
        super().init_weights()
        if self.init_checkpoint:
            state = _load_clip_state(self.init_checkpoint, 'init_checkpoint')
            own = self.clip.state_dict()
            missing = [k for k in own if k not in state]
            unexpected = [k for k in state if k not in own]
            shapes = [f'{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}' for k, v in own.items()
                      if k in state and state[k].shape != v.shape]
            if missing or unexpected or shapes:
                raise RuntimeError(
                    f'init_checkpoint={self.init_checkpoint!r} does not fit this model: missing '
                    f'{missing[:8]}, unexpected {unexpected[:8]}, shapes (checkpoint vs model) '
                    f'{shapes[:8]}. Build the student with the config the checkpoint was made for '
                    '(a pruned checkpoint also needs pruned_structure=<the same file>)')
            self.clip.load_state_dict(state, strict=True)
            if self.fixed_logit_scale is not None:
                self.clip.logit_scale.data.fill_(math.log(self.fixed_logit_scale))

    def train(self, mode: bool = True) -> 'OpenCLIPModel':
        self._class_embed = None  # class prompts are re-encoded after any (re)training
        return super().train(mode)

    # Encoding ---------------------------------------------------------------------
    def _masks(self):
        if self.l0_masks is None:
            return None
        if self.training:
            self.l0_masks.clamp_()
        return self.l0_masks(sample=self.training)

    def encode_image(self, img: torch.Tensor, masks=None) -> torch.Tensor:
        if masks is not None:
            from ..surgery.clip_structure import encode_image_masked
            return encode_image_masked(self.clip, img, masks.get('visual'))
        return self.clip.encode_image(img)

    def encode_text(self, text: torch.Tensor, masks=None) -> torch.Tensor:
        if masks is not None:
            from ..surgery.clip_structure import encode_text_masked
            return encode_text_masked(self.clip, text, masks.get('text'))
        return self.clip.encode_text(text)

    def logit_scale(self) -> torch.Tensor:
        if self.fixed_logit_scale is not None:
            return self.clip.logit_scale.new_tensor(self.fixed_logit_scale)
        return self.clip.logit_scale.exp().clamp(max=self.max_logit_scale).reshape(())

    def extract(self, inputs: dict) -> Dict[str, Optional[torch.Tensor]]:
        """Image/text embeddings (unnormalised) and the logit scale, through the taps."""
        if not isinstance(inputs, dict) or not ({'img', 'text'} & set(inputs)):
            raise TypeError('OpenCLIPModel expects inputs = dict(img=..., text=...), got '
                            f'{type(inputs).__name__}')
        masks = self._masks()
        img = self.image_tap(self.encode_image(inputs['img'], masks)) if 'img' in inputs else None
        text = self.text_tap(self.encode_text(inputs['text'], masks)) if 'text' in inputs else None
        scale = self.scale_tap(self.logit_scale())
        return dict(image_features=img, text_features=text, logit_scale=scale)

    # Modes ------------------------------------------------------------------------
    def forward(self, inputs: dict, data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.extract(inputs)
        raise ValueError(f"mode={mode!r} is not valid; choose 'loss', 'predict' or 'tensor'")

    def loss(self, inputs: dict, data_samples=None) -> Dict[str, torch.Tensor]:
        if 'img' not in inputs or 'text' not in inputs:
            raise KeyError("OpenCLIPModel 'loss' mode needs both inputs['img'] and inputs['text']")
        feats = self.extract(inputs)
        losses = {}
        if self.contrastive_weight > 0:
            losses['loss_contrastive'] = self.contrastive_weight * clip_contrastive_loss(
                feats['image_features'], feats['text_features'], feats['logit_scale'])
        if self.l0_masks is not None and self.training:
            losses.update(self.l0_masks.lagrangian())
            self.l0_masks.step += 1
        return losses

    @torch.no_grad()
    def class_embeddings(self) -> torch.Tensor:
        """(C, D) normalised mean prompt embedding of each zero-shot class (cached)."""
        if self._class_embed is None:
            texts = [t for prompts in self.zero_shot for t in prompts]
            tokens = self.tokenizer(texts).to(self.clip.logit_scale.device)
            masks = self._masks()
            feats = torch.cat([F.normalize(self.encode_text(chunk, masks), dim=-1)
                               for chunk in tokens.split(512)])
            feats = feats.view(len(self.zero_shot), -1, feats.shape[-1]).mean(dim=1)
            self._class_embed = F.normalize(feats, dim=-1)
        return self._class_embed

    @torch.no_grad()
    def predict(self, inputs: dict, data_samples=None) -> List[BaseDataElement]:
        feats = self.extract(inputs)
        img, text = feats['image_features'], feats['text_features']
        num = (img if img is not None else text).shape[0]
        samples = data_samples if data_samples is not None else [BaseDataElement() for _ in range(num)]
        img = F.normalize(img, dim=-1) if img is not None else None
        text = F.normalize(text, dim=-1) if text is not None else None
        scores = None
        if self.zero_shot is not None and img is not None:
            scores = (feats['logit_scale'] * img @ self.class_embeddings().t()).softmax(dim=-1)
        for i, sample in enumerate(samples):
            if img is not None:
                sample.img_embed = img[i]
            if text is not None:
                sample.text_embed = text[i]
            if scores is not None:
                sample.pred_score = scores[i]
                sample.pred_label = scores[i].argmax()
        return samples

    def structure(self) -> Dict[str, dict]:
        from ..surgery.clip_structure import structure_of
        return structure_of(self.clip)

    def prune(self) -> nn.Module:
        """The dense pruned ``CLIP`` of the current masks (deterministic, TinyCLIP's rule)."""
        if self.l0_masks is None:
            raise ValueError('prune() needs masks: build the model with sparsity=dict(...)')
        from ..surgery.clip_structure import prune_clip
        return prune_clip(self.clip, self.l0_masks(sample=False))

