"""One tower of an open_clip model as a ``BaseModel``: image-only or text-only batches.

:class:`~.open_clip_model.OpenCLIPModel` takes image-text batches
(``dict(img=..., text=...)``). An image-only student (an mmpretrain classifier) or a
text-only student gives a plain batch instead; :class:`OpenCLIPImageEncoder` and
:class:`OpenCLIPTextEncoder` take that batch and return the tower's embedding. Each
keeps only its tower of the open_clip model (the other one is dropped after the
build), under ``clip.`` as in ``OpenCLIPModel``, so module paths and checkpoint keys
are those of open_clip with a ``clip.`` prefix.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement
from torch import nn

from mmkd.registry import MODELS

from .open_clip_model import OpenCLIPModel, _load_clip_state

# A minimal other tower, built (then dropped) when model_cfg describes only one tower.
_TINY_VISION = dict(image_size=8, patch_size=8, width=8, layers=1, head_width=8)
_TINY_TEXT = dict(context_length=2, vocab_size=2, width=8, heads=1, layers=1)


def _size_pair(size) -> Optional[tuple]:
    if size is None:
        return None
    if isinstance(size, int):
        return (size, size)
    return tuple(int(s) for s in size)


def _drop_all_but(module: nn.Module, keep: Sequence[str]) -> None:
    """Set every direct submodule, parameter and buffer of ``module`` not in ``keep`` to None."""
    for store in (module._modules, module._parameters, module._buffers):
        for name in list(store):
            if name not in keep:
                store[name] = None


class OpenCLIPTower(BaseModel):
    """Common part of the two tower wrappers (build, weights, modes); not registered.

    Args:
        model_name (str, optional): an open_clip model name (``'ViT-B-32'``).
        model_cfg (dict, optional): ``open_clip.model.CLIP`` arguments; only
            ``embed_dim`` and this tower's config (``vision_cfg`` / ``text_cfg``) are
            needed. Exactly one of ``model_name`` / ``model_cfg``.
        pretrained (str, optional): with ``model_name``: an open_clip pretrained tag
            (downloads on first use) or a local weights file (``.bin``, ``.pt``,
            ``.safetensors``, or open_clip's training checkpoint ``{'epoch', 'state_dict':
            {'module.<key>': ...}}``), read by mmkd's safe loader and loaded strictly into
            the whole model at build time (then the other tower is dropped).
        init_checkpoint (str, optional): weights loaded by ``init_weights()``: a raw
            open_clip checkpoint, one of ``OpenCLIPModel``, of this wrapper or of an mmkd
            algorithm; the keys of the other tower are ignored, every key of this tower
            must be there.
        data_preprocessor (dict, optional): used when the model is trained or tested on
            its own; a teacher gets its inputs from the algorithm.
        init_cfg (dict, optional): mmengine init config (not applied to open_clip's weights).
    """

    _field = 'embed'
    _other_tower: Dict[str, dict] = {}

    def __init__(self,
                 model_name: Optional[str] = None,
                 model_cfg: Optional[dict] = None,
                 pretrained: Optional[str] = None,
                 init_checkpoint: Optional[str] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        name = type(self).__name__
        if (model_name is None) == (model_cfg is None):
            raise ValueError(f'{name} needs exactly one of model_name (an open_clip model name '
                             "such as 'ViT-B-32') and model_cfg (open_clip.model.CLIP arguments); "
                             f'got model_name={model_name!r}, model_cfg={model_cfg!r}')
        if model_cfg is not None:
            model_cfg = dict(model_cfg)
            for key, default in self._other_tower.items():
                model_cfg.setdefault(key, default)
        self.clip = OpenCLIPModel._build_clip(model_name, model_cfg, pretrained)
        self._keep_tower(self.clip)
        self.model_name = model_name
        self.init_checkpoint = init_checkpoint
        self.embed_tap = nn.Identity()  # what distillers record (ModuleOutputs source)

    def _keep_tower(self, clip: nn.Module) -> None:
        raise NotImplementedError(f'{type(self).__name__}: use OpenCLIPImageEncoder or '
                                  'OpenCLIPTextEncoder; OpenCLIPTower is their base')

    # Weights ----------------------------------------------------------------------
    def init_weights(self) -> None:
        """Load ``init_checkpoint`` if given; otherwise keep the weights open_clip built
        (mmengine's default would descend into the tower)."""
        self._is_init = True
        if not self.init_checkpoint:
            return
        state = _load_clip_state(self.init_checkpoint, 'init_checkpoint')
        own = self.clip.state_dict()
        missing = [k for k in own if k not in state]
        shapes = [f'{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}' for k, v in own.items()
                  if k in state and state[k].shape != v.shape]
        if missing or shapes:
            raise RuntimeError(
                f'init_checkpoint={self.init_checkpoint!r} does not fit this '
                f'{type(self).__name__}: missing {missing[:8]} ({len(missing)}), shapes '
                f'(checkpoint vs model) {shapes[:8]}. Build it with the model_name / '
                'model_cfg the checkpoint was trained with')
        self.clip.load_state_dict({k: state[k] for k in own}, strict=True)

    # Modes ------------------------------------------------------------------------
    def extract(self, inputs) -> torch.Tensor:
        raise NotImplementedError(f'{type(self).__name__}: use OpenCLIPImageEncoder or '
                                  'OpenCLIPTextEncoder; OpenCLIPTower is their base')

    def forward(self, inputs, data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'tensor'):
        if mode == 'tensor':
            return self.extract(inputs)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'loss':
            raise ValueError(
                f"{type(self).__name__} has no task loss (mode='loss'). As a teacher it runs in "
                "'tensor' mode; as a student, train it by distillation only "
                '(SingleTeacherDistill(calculate_student_loss=False)) or train both towers '
                'with OpenCLIPModel')
        raise ValueError(f"mode={mode!r}; valid: 'tensor', 'predict', 'loss'")

    @torch.no_grad()
    def predict(self, inputs, data_samples=None) -> List[BaseDataElement]:
        """Each data sample gets ``img_embed`` / ``text_embed`` (L2-normalised)."""
        embed = F.normalize(self.extract(inputs), dim=-1)
        samples = data_samples if data_samples is not None else [
            BaseDataElement() for _ in range(embed.shape[0])]
        for sample, row in zip(samples, embed):
            sample.set_field(row, self._field)
        return samples


@MODELS.register_module()
class OpenCLIPImageEncoder(OpenCLIPTower):
    """The image tower of an open_clip model; inputs are a plain image batch.

    ``'tensor'`` mode takes ``(N, 3, H, W)`` images (the student's preprocessed batch,
    or ``teacher_data_preprocessor`` with CLIP's mean/std) and returns the image
    embedding ``(N, embed_dim)``, unnormalised, through ``embed_tap``. ``'predict'``
    sets ``img_embed`` (normalised) on each data sample. Intermediate tokens of a ViT
    tower are ``clip.visual.transformer.resblocks.<i>`` (``(N, 1 + h*w, width)``, class
    token first).

    Besides the arguments of :class:`OpenCLIPTower`:

    Args:
        resize_to (int | tuple, optional): bilinear resize of the inputs to this size (the
            tower's ``image_size``, e.g. 224, for students trained at another size).
            Without it, inputs of another size than the tower's are refused.
    """

    _field = 'img_embed'
    _other_tower = dict(text_cfg=_TINY_TEXT)

    def __init__(self, *args, resize_to: Optional[Union[int, Sequence[int]]] = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.resize_to = _size_pair(resize_to)
        image_size = getattr(self.clip.visual, 'image_size', None)
        self.image_size = _size_pair(image_size) if image_size is not None else None

    def _keep_tower(self, clip: nn.Module) -> None:
        _drop_all_but(clip, ('visual', ))

    def extract(self, inputs) -> torch.Tensor:
        if isinstance(inputs, dict):  # an image-text batch: take the images
            inputs = inputs.get('img')
        if not torch.is_tensor(inputs) or inputs.dim() != 4:
            raise TypeError('OpenCLIPImageEncoder expects an image batch (N, 3, H, W), got '
                            f'{type(inputs).__name__}'
                            f'{tuple(inputs.shape) if torch.is_tensor(inputs) else ""}')
        if self.resize_to is not None and tuple(inputs.shape[-2:]) != self.resize_to:
            inputs = F.interpolate(inputs if inputs.is_floating_point() else inputs.float(),
                                   size=self.resize_to, mode='bilinear',
                                   align_corners=False)
        if self.image_size is not None and tuple(inputs.shape[-2:]) != self.image_size:
            raise ValueError(
                f'OpenCLIPImageEncoder: the image tower takes {self.image_size} images, got '
                f'{tuple(inputs.shape[-2:])}; set resize_to={self.image_size[0]} to resize the '
                "teacher's inputs (the student keeps its own size)")
        out = self.clip.visual(inputs)
        if isinstance(out, (tuple, list)):  # towers with output_tokens=True: (pooled, tokens)
            out = out[0]
        return self.embed_tap(out)


@MODELS.register_module()
class OpenCLIPTextEncoder(OpenCLIPTower):
    """The text tower of an open_clip model; inputs are token ids.

    ``'tensor'`` mode takes ``(N, L)`` token ids (a tensor, a list of ``(L,)`` tensors,
    or an image-text batch's ``dict(text=...)``), ``L`` the tower's context length,
    and returns the text embedding ``(N, embed_dim)``, unnormalised, through
    ``embed_tap``. ``'predict'`` sets ``text_embed`` (normalised). Intermediate tokens
    are ``clip.transformer.resblocks.<i>`` (``clip.text.transformer.resblocks.<i>`` for
    models with a custom text tower). Teacher and student must share the tokenizer:
    both read the same ids.
    """

    _field = 'text_embed'
    _other_tower = dict(vision_cfg=_TINY_VISION)

    def _keep_tower(self, clip: nn.Module) -> None:
        for name in ('visual', 'logit_scale', 'logit_bias'):
            for store in (clip._modules, clip._parameters):
                if name in store:
                    store[name] = None

    @property
    def context_length(self) -> Optional[int]:
        return getattr(self.clip, 'context_length', None)

    def extract(self, inputs) -> torch.Tensor:
        if isinstance(inputs, dict):
            inputs = inputs.get('text')
        if isinstance(inputs, (list, tuple)) and inputs and all(torch.is_tensor(t) for t in inputs):
            inputs = torch.stack(list(inputs))
        if not torch.is_tensor(inputs) or inputs.dim() != 2 or inputs.is_floating_point():
            raise TypeError('OpenCLIPTextEncoder expects token ids (N, L) (integers), got '
                            f'{type(inputs).__name__}'
                            f'{tuple(inputs.shape) if torch.is_tensor(inputs) else ""}')
        if self.context_length is not None and inputs.shape[1] != self.context_length:
            raise ValueError(f'OpenCLIPTextEncoder: the text tower takes {self.context_length} '
                             f'tokens per text, got {inputs.shape[1]}; tokenize with '
                             f'context_length={self.context_length}')
        return self.embed_tap(self.clip.encode_text(inputs))
