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

#: The log scheme: every distillation term is ``distill.<term>``; task losses keep the
#: task package's names.
DISTILL_PREFIX = 'distill.'


def check_finite_losses(losses: Dict) -> None:
    """Raise FloatingPointError naming every non-finite loss and the training step."""
    bad = []
    for name, value in losses.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if torch.is_tensor(v) and v.is_floating_point() and not bool(torch.isfinite(v).all()):
                bad.append(f'{name}={v.detach().float().mean().item()}')
    if bad:
        from mmengine.logging import MessageHub
        hub = MessageHub.get_current_instance()
        step = hub.get_info('iter', None) if hub is not None else None
        raise FloatingPointError(
            f'non-finite loss at training iteration {step}: {", ".join(bad)}. Training '
            'stopped before the optimizer step; the last checkpoint on disk is untouched. '
            'Lower the learning rate or the loss weight, or check the data.')


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
        self.init_distillation_state()

    # What every algorithm gets from the core: loss-weight scale, stop, NaN check, cache ---
    #: The prefix of every distillation term in the loss dict (and in the log).
    DISTILL_PREFIX = DISTILL_PREFIX

    def init_distillation_state(self) -> None:
        """The state every algorithm shares; called by ``__init__`` (and by algorithms
        that build their students themselves and call ``BaseModel.__init__``).

        * ``distillation_stopped`` (persistent buffer, key ``'distillation_stopped'``):
          set by ``StopDistillHook``; saved in checkpoints, so the decision survives a
          resume. While set, ``loss`` runs no teacher forward and returns no
          ``distill.*`` term.
        * ``distill_loss_scale`` (float, 1.0): the factor of every ``distill.*`` term,
          set by ``DistillLossWeightHook``.
        """
        self.register_buffer('distillation_stopped', torch.tensor(False))
        self._distill_loss_scale = 1.0

    @property
    def distill_loss_scale(self) -> float:
        """The factor of every ``distill.*`` term (``DistillLossWeightHook`` sets it).

        An algorithm with a ``ConfigurableDistiller`` hands it to the distiller (its
        ``loss_weight_scale``), which applies it to the terms it computes; the others
        apply it in :meth:`scale_distill_losses`.
        """
        return self._distill_loss_scale

    @distill_loss_scale.setter
    def distill_loss_scale(self, value: float) -> None:
        self._distill_loss_scale = float(value)
        distiller = self._modules.get('distiller')
        if distiller is not None and hasattr(distiller, 'loss_weight_scale'):
            distiller.loss_weight_scale = float(value)

    def scale_distill_losses(self, losses: Dict) -> Dict:
        """Multiply every ``distill.*loss*`` term by :attr:`distill_loss_scale`, in place.

        Nothing is multiplied at 1.0, so a run without a schedule computes exactly
        what it computed before (bit for bit); the keys and their order are kept.
        """
        scale = self._distill_loss_scale
        if scale == 1.0:
            return losses
        for key, value in losses.items():
            if key.startswith(DISTILL_PREFIX) and 'loss' in key:  # not logged statistics
                losses[key] = value * scale
        return losses

    @property
    def distill_active(self) -> bool:
        """False once ``StopDistillHook`` has set ``distillation_stopped``."""
        return not bool(self.distillation_stopped)

    def cannot_stop(self, what: str) -> RuntimeError:
        """The error of a step that has nothing to train without distillation."""
        return RuntimeError(
            f'{type(self).__name__}: distillation is stopped (distillation_stopped=True, set by '
            f'StopDistillHook) but {what}, so there is nothing to train without distillation. '
            'Stop distillation only in a stage with a task loss, or remove StopDistillHook.')

    def refuse_cached_teacher_outputs(self, data_samples, reason: str) -> None:
        """Raise if the batch carries cached teacher outputs (``CachedTeacherDataset``)."""
        if data_samples and any(getattr(s, 'teacher_outputs', None) is not None
                                for s in data_samples):
            raise ValueError(
                f'{type(self).__name__} cannot train from cached teacher outputs: {reason}. '
                'Remove CachedTeacherDataset from train_dataloader (or set its cache_dir=None).')

    def finish_losses(self, losses: Dict) -> Dict:
        """The last step of every ``loss``: the weight scale, then the NaN check."""
        losses = self.scale_distill_losses(losses)
        if getattr(self, 'check_finite', False):
            check_finite_losses(losses)
        return losses

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

    def touch_distillation_parameters(self, losses: Dict,
                                      params: Optional[List[nn.Parameter]] = None) -> Dict:
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
        params = self.distillation_parameters() if params is None else list(params)
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
