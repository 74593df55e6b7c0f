"""Layer-wise learning-rate decay that sees a ViT student inside a distillation algorithm."""
from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

from mmengine.logging import MMLogger
from mmengine.model import is_model_wrapper
from mmengine.optim import DefaultOptimWrapperConstructor
from torch import nn

from mmkd.registry import OPTIM_WRAPPER_CONSTRUCTORS

_OWN_KEYS = ('layer_decay_rate', 'num_layers', 'student_prefix', 'backbone_prefix')
_EMBEDDING_NAMES = ('cls_token', 'pos_embed', 'mask_token')


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class DistillLayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    r"""Layer-wise lr decay (BEiT/MAE fine-tuning) for a ViT student, with or without a teacher.

    mmpretrain's ``LearningRateDecayOptimWrapperConstructor`` asks the top-level model
    for ``get_layer_depth`` and fails on anything it does not know, such as the
    distiller's connectors; mmdet and mmseg models have no ``get_layer_depth`` at all.
    This constructor assigns depths from parameter names instead, so that the same
    rule covers a plain classifier/detector/segmentor and the student inside an mmkd
    algorithm (parameters named ``architecture.<student name>``; names below are the
    student's), each parameter gets a depth :math:`d`:

    - depth 0: ``backbone.cls_token``, ``backbone.pos_embed``, ``backbone.mask_token``,
      ``backbone.patch_embed.*``;
    - depth :math:`i + 1`: ``backbone.layers.i.*`` or ``backbone.blocks.i.*``;
    - depth :math:`L + 1`: everything else -- the backbone's final norms, ``dist_token``,
      neck, heads, and every parameter outside the student (the distiller's connectors);

    and multiplies the learning rate of each parameter by
    :math:`\text{rate}^{\,L + 1 - d}` (:math:`L` = number of ViT blocks), the rule of
    MAE's ``param_groups_lrd`` (also used by G2SD and DMAE) and of mmpretrain/mmseg's
    constructors: the head keeps the base lr, block :math:`i` gets
    :math:`\text{rate}^{L - i}`, the embeddings :math:`\text{rate}^{L + 1}`. Like the
    official G2SD code, the DeiT distillation token is not an embedding here.
    The teacher of an mmkd algorithm is not a submodule, so it is never in the optimizer.

    Weight decay and other per-parameter options come from mmengine's
    ``DefaultOptimWrapperConstructor`` (``custom_keys`` with ``decay_mult``/``lr_mult``,
    ``bias_decay_mult``, ``norm_decay_mult``, ``flat_decay_mult``, ...); a ``lr_mult``
    multiplies with the layer scale. Each group records ``lr_scale``, ``layer_id`` and
    ``param_name``.

    ``paramwise_cfg`` keys of this constructor:

    - ``layer_decay_rate`` (float, required): in (0, 1].
    - ``num_layers`` (int, optional): :math:`L`. Inferred from the largest block index
      when omitted; when given, it must cover every block index found.
    - ``student_prefix`` (str, optional): prefix of the student's parameters; default
      ``'architecture.'`` when the model is an mmkd algorithm, else ``''``.
    - ``backbone_prefix`` (str): default ``'backbone.'``.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None) -> None:
        paramwise_cfg = dict(paramwise_cfg or {})
        own = {k: paramwise_cfg.pop(k) for k in _OWN_KEYS if k in paramwise_cfg}
        if 'layer_decay_rate' not in own:
            raise ValueError('DistillLayerDecayOptimWrapperConstructor needs '
                             'paramwise_cfg.layer_decay_rate (a float in (0, 1]), e.g. 0.75')
        rate = own['layer_decay_rate']
        if not isinstance(rate, (int, float)) or not 0 < rate <= 1:
            raise ValueError(f'paramwise_cfg.layer_decay_rate={rate!r}: must be a number in (0, 1]')
        num_layers = own.get('num_layers')
        if num_layers is not None and (not isinstance(num_layers, int) or num_layers < 1):
            raise ValueError(f'paramwise_cfg.num_layers={num_layers!r}: must be a positive int '
                             '(the number of ViT blocks) or left out to infer it')
        self.layer_decay_rate = float(rate)
        self.num_layers = num_layers
        self.student_prefix = own.get('student_prefix')
        self.backbone_prefix = own.get('backbone_prefix', 'backbone.')
        # the parent's add_params reads only its own keys; keep the dict non-empty so that
        # its __call__ always goes through add_params
        paramwise_cfg.setdefault('custom_keys', {})
        super().__init__(optim_wrapper_cfg, paramwise_cfg)

    # -- depth rule ---------------------------------------------------------------
    def _student_prefix(self, model: nn.Module) -> str:
        if self.student_prefix is not None:
            return self.student_prefix
        return 'architecture.' if isinstance(getattr(model, 'architecture', None),
                                             nn.Module) else ''

    def _block_pattern(self, student_prefix: str) -> re.Pattern:
        stem = re.escape(student_prefix + self.backbone_prefix)
        return re.compile(rf'^{stem}(?:layers|blocks)\.(\d+)\.')

    def resolve_num_layers(self, names: List[str], student_prefix: str) -> int:
        """:math:`L`: ``num_layers`` or one more than the largest block index in ``names``."""
        pattern = self._block_pattern(student_prefix)
        found = [int(m.group(1)) for m in map(pattern.match, names) if m]
        where = f"'{student_prefix}{self.backbone_prefix}layers.<i>' or '...blocks.<i>'"
        if self.num_layers is None:
            if not found:
                raise ValueError(f'paramwise_cfg.num_layers is not given and no parameter '
                                 f'matches {where}; give num_layers, or student_prefix / '
                                 'backbone_prefix matching the model')
            return max(found) + 1
        if found and max(found) >= self.num_layers:
            raise ValueError(f'paramwise_cfg.num_layers={self.num_layers} but the model has '
                             f'block {max(found)} ({where}); valid: >= {max(found) + 1}')
        return self.num_layers

    def layer_depth(self, name: str, num_layers: int, student_prefix: str) -> int:
        """Depth of the parameter ``name`` (full name in the top-level model)."""
        stem = student_prefix + self.backbone_prefix
        if not name.startswith(stem):
            return num_layers + 1
        rest = name[len(stem):]
        if rest in _EMBEDDING_NAMES or rest.startswith('patch_embed.'):
            return 0
        match = self._block_pattern(student_prefix).match(name)
        if match:
            return int(match.group(1)) + 1
        return num_layers + 1

    def lr_scales(self, model: nn.Module) -> Dict[str, Tuple[int, float]]:
        """``{param name: (depth, lr scale)}`` for every parameter of ``model``."""
        if is_model_wrapper(model):
            model = model.module
        names = [n for n, _ in model.named_parameters()]
        prefix = self._student_prefix(model)
        num_layers = self.resolve_num_layers(names, prefix)
        out = {}
        for name in names:
            depth = self.layer_depth(name, num_layers, prefix)
            out[name] = (depth, self.layer_decay_rate**(num_layers + 1 - depth))
        return out

    # -- groups ---------------------------------------------------------------------
    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '',
                   is_dcn_module=None) -> None:
        if prefix:  # the parent's recursion into submodules
            super().add_params(params, module, prefix, is_dcn_module)
            return
        first = len(params)
        super().add_params(params, module, prefix, is_dcn_module)
        scales = self.lr_scales(module)
        names = {id(p): n for n, p in module.named_parameters()}
        by_depth: Dict[int, List[str]] = {}
        for group in params[first:]:
            name = names[id(group['params'][0])]
            depth, scale = scales[name]
            group['lr'] = group.get('lr', self.base_lr) * scale
            group['lr_scale'] = scale
            group['layer_id'] = depth
            group['param_name'] = name
            by_depth.setdefault(depth, []).append(name)
        logger = MMLogger.get_current_instance()
        for depth in sorted(by_depth):
            logger.debug(f'layer-wise lr decay: depth {depth}, scale '
                         f'{scales[by_depth[depth][0]][1]:.4g}: {", ".join(by_depth[depth])}')
