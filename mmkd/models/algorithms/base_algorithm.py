"""Base class of mmkd algorithms: a student model plus what trains it."""
from __future__ import annotations

from typing import Dict, List, Optional, Union

import torch
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement
from torch import nn

from mmkd.registry import MODELS
from mmkd.utils.model_builder import build_in_scope, build_task_model

ForwardResults = Union[Dict[str, torch.Tensor], List[BaseDataElement], torch.Tensor]


@MODELS.register_module()
class BaseAlgorithm(BaseModel):
    """Own a student (``architecture``) and delegate inference to it.

    ``predict`` and ``tensor`` modes are the student's, so a task's evaluators and
    ``tools/test.py`` measure the student unchanged. The algorithm uses the student's
    data preprocessor unless ``data_preprocessor`` is given.

    Args:
        architecture (dict | nn.Module): the student, as a model dict (with
            ``_scope_`` or an unambiguous type) or ``dict(cfg_path='mmdet::...',
            pretrained=False)``.
        data_preprocessor (dict, optional): overrides the student's.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 architecture: Union[dict, nn.Module],
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        student, info = build_task_model(architecture, key='architecture')
        self.student_scope = info['scope']
        if data_preprocessor is None:
            data_preprocessor = getattr(student, 'data_preprocessor', None)
        elif isinstance(data_preprocessor, dict):
            # Build in the student's scope: the type is usually the task package's
            # (e.g. SegDataPreProcessor), and the current scope is 'mmkd' here.
            data_preprocessor = build_in_scope(data_preprocessor, self.student_scope)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.architecture = student

    @property
    def student(self) -> nn.Module:
        return self.architecture

    def get_layer_depth(self, param_name: str):
        """Layer-wise lr decay (mmpretrain's constructor) sees the student's layers."""
        if not param_name.startswith('architecture.') or not hasattr(self.architecture,
                                                                     'get_layer_depth'):
            raise ValueError(f'{param_name!r} is not a student parameter with a layer depth')
        return self.architecture.get_layer_depth(param_name[len('architecture.'):])

    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'tensor',
                **kwargs) -> ForwardResults:
        if mode == 'loss':
            return self.loss(inputs, data_samples, **kwargs)
        if mode in ('predict', 'tensor'):
            return self.architecture(inputs, data_samples, mode=mode)
        raise ValueError(f"mode={mode!r} is not valid; choose 'loss', 'predict' or 'tensor'")

    def loss(self, inputs: torch.Tensor, data_samples: Optional[List[BaseDataElement]] = None,
             **kwargs) -> Dict[str, torch.Tensor]:
        return self.architecture(inputs, data_samples, mode='loss')
