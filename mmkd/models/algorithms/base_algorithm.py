"""Base class of mmkd algorithms: a student model plus what trains it."""
from __future__ import annotations

from typing import Dict, List, Optional, Union

import torch
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement
from torch import nn

from mmkd.registry import MODELS
from mmkd.utils.model_builder import build_in_scope, build_task_model

from ..teachers import TeacherSet

ForwardResults = Union[Dict[str, torch.Tensor], List[BaseDataElement], torch.Tensor]


class _ZeroTouch(torch.autograd.Function):
    """A scalar 0 whose gradient with respect to every input is exactly 0.

    Unlike ``sum(p.sum() for p in params) * 0`` it stays 0 (and its gradients stay 0)
    whatever the inputs hold, inf and NaN included, and costs no reduction.
    """

    @staticmethod
    def forward(ctx, *params: torch.Tensor) -> torch.Tensor:
        ctx.metas = [(p.shape, p.dtype, p.device) for p in params]
        return torch.zeros((), dtype=params[0].dtype, device=params[0].device)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return tuple(torch.zeros(shape, dtype=dtype, device=device)
                     for shape, dtype, device in ctx.metas)


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
            if 'type' not in data_preprocessor:
                # mmengine's Runner hands a config's top-level `data_preprocessor` (e.g.
                # mmpretrain's ImageNet base: num_classes, mean/std, Mixup/CutMix) to the
                # model; without a type it means the student's own preprocessor class
                # with these arguments, as mmpretrain's classifiers read it.
                own = getattr(student, 'data_preprocessor', None)
                if own is None:
                    raise KeyError(f'data_preprocessor={dict(data_preprocessor)!r} has no '
                                   "'type' and the student has no data preprocessor to "
                                   'take it from; give its type')
                data_preprocessor = dict(data_preprocessor, type=type(own).__name__)
            # Build in the student's scope: the type is usually the task package's
            # (e.g. SegDataPreProcessor), and the current scope is 'mmkd' here.
            data_preprocessor = build_in_scope(data_preprocessor, self.student_scope)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.architecture = student

    @property
    def student(self) -> nn.Module:
        return self.architecture

    # Frozen teachers: held in TeacherSets, which the module tree does not see ------------
    def _teacher_sets(self) -> List[TeacherSet]:
        return [v for v in self.__dict__.values() if isinstance(v, TeacherSet)]

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        for teachers in self._teacher_sets():
            teachers.apply(fn, *args, **kwargs)  # .to()/.cuda()/.half() move them too
        return self

    def _set_device(self, device: torch.device) -> None:
        super()._set_device(device)
        for teachers in self._teacher_sets():
            teachers.set_device(device)

    def train(self, mode: bool = True) -> 'BaseAlgorithm':
        super().train(mode)
        for teachers in self._teacher_sets():
            teachers.eval()  # never leave eval mode, whatever the runner asks
        return self

    def get_layer_depth(self, param_name: str):
        """Layer-wise lr decay (mmpretrain's constructor) sees the student's layers."""
        if not param_name.startswith('architecture.') or not hasattr(self.architecture,
                                                                     'get_layer_depth'):
            raise ValueError(f'{param_name!r} is not a student parameter with a layer depth')
        return self.architecture.get_layer_depth(param_name[len('architecture.'):])

    def distillation_parameters(self) -> List[nn.Parameter]:
        """Trainable parameters outside the student: connectors, learnable loss terms, ..."""
        return [p for name, p in self.named_parameters()
                if p.requires_grad and not name.startswith('architecture.')]

    def touch_distillation_parameters(self, losses: Dict) -> Dict:
        """Keep every trainable distillation parameter in the graph, with a zero gradient.

        Called by an algorithm's ``loss`` while ``distillation_stopped`` is set
        (``StopDistillHook``): the distillation losses are skipped, so connectors and
        learnable loss parameters no longer contribute to the loss. DDP without
        ``find_unused_parameters`` waits for a gradient of every parameter it holds and
        fails at the next step ("Expected to have finished reduction in the prior
        iteration"). This adds an exactly-zero term that depends on all of them to
        the first task loss (a tensor, or the first tensor of a list) instead of a new
        log key, so the logged values and keys are those of the student alone. Their
        gradient is exactly 0, in one process as in several, so the student trains
        as without the term; the optimizer still steps those parameters (weight decay,
        momentum), which is harmless since nothing reads them any more.

        Raises:
            RuntimeError: distillation is stopped and the step has no loss left (e.g.
                ``calculate_student_loss=False``): there would be nothing to train.
        """
        params = self.distillation_parameters()
        if not params:
            return losses
        zero = _ZeroTouch.apply(*params)
        for key, value in losses.items():
            if 'loss' not in key:
                continue
            if torch.is_tensor(value):
                losses[key] = value + zero.to(device=value.device, dtype=value.dtype)
                return losses
            if isinstance(value, (list, tuple)) and value and torch.is_tensor(value[0]):
                first = value[0] + zero.to(device=value[0].device, dtype=value[0].dtype)
                losses[key] = type(value)([first, *value[1:]])
                return losses
        raise RuntimeError(
            f'{type(self).__name__}: distillation is stopped (distillation_stopped=True, set '
            'by StopDistillHook) and the step has no task loss left to train on (got '
            f'{sorted(losses)}); set calculate_student_loss=True or remove StopDistillHook')

    #: What a task loss named exactly ``loss`` (mmpretrain's classification heads, MAE)
    #: is logged as: the first free name of these.
    RENAMED_TASK_LOSS = ('loss_cls', 'student.loss')

    def parse_losses(self, losses: Dict) -> tuple:
        """mmengine's ``parse_losses``, with a task loss named ``loss`` renamed first.

        mmengine logs the total as ``loss`` and then each term under its own name; a
        term named exactly ``loss`` (mmpretrain's ``ClsHead`` returns
        ``{'loss': ...}``) overwrote the total in the log, so the logged ``loss`` was
        the classifier's alone while the sum with the distillation terms was
        backpropagated. That term is logged as ``loss_cls`` (``student.loss`` if
        ``loss_cls`` is taken); the logged ``loss`` is then the backpropagated sum.
        """
        if 'loss' in losses:
            new = next((n for n in self.RENAMED_TASK_LOSS if n not in losses), None)
            if new is None:
                raise KeyError(f'{type(self).__name__}: the losses hold a term named "loss", '
                               'which would hide the logged total, and every name it could be '
                               f'logged as {self.RENAMED_TASK_LOSS} is taken: {sorted(losses)}')
            losses = {(new if k == 'loss' else k): v for k, v in losses.items()}
        return super().parse_losses(losses)

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
