"""How MultiTeacherDistill combines several teachers' logits into distillation losses.

A combiner is an ``nn.Module`` registered in ``mmkd.registry.MODELS``. The algorithm
calls ``combiner.setup(way_names)`` once (the E teachers, or specialised teachers,
in order) and then, every step, ``combiner(student_logits, teacher_logits)`` with
``teacher_logits`` of shape (N, E, C[, H, W]); it returns a dict of losses (keys
containing 'loss') and scalars to log. Learnable parts (MST's router) are trained
with the student and saved in checkpoints.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from mmkd.registry import MODELS

from ..losses.mst_losses import EnsembleKDLoss, LoadBalanceLoss, RoutedKDLoss, topk_route
from .gatenet import DenseGateNet, GateNet


class BaseTeacherCombiner(nn.Module):
    """Common part: the names of the E teachers ("ways") set by the algorithm."""

    def __init__(self) -> None:
        super().__init__()
        self.way_names: List[str] = []

    def setup(self, way_names: Sequence[str]) -> None:
        if not way_names:
            raise ValueError(f'{type(self).__name__}: no teacher to combine')
        self.way_names = list(way_names)

    def forward(self, student_logits: torch.Tensor,
                teacher_logits: torch.Tensor) -> Dict[str, torch.Tensor]:
        raise NotImplementedError


@MODELS.register_module()
class AverageTeachers(BaseTeacherCombiner):
    """KD towards the average of the teachers' softened probabilities.

    ``loss_kd = EnsembleKDLoss(tau, weights=None)``; with one teacher this is
    Hinton et al.'s KD.

    Args:
        tau (float): temperature (default 4, as MST-Distill's KD terms).
        loss_weight (float): weight of the KD loss.
    """

    def __init__(self, tau: float = 4.0, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_kd = EnsembleKDLoss(tau=tau, weights=None, loss_weight=loss_weight)

    def forward(self, student_logits, teacher_logits):
        return {'loss_kd': self.loss_kd(student_logits, teacher_logits)}


@MODELS.register_module()
class FixedWeightTeachers(BaseTeacherCombiner):
    """KD towards a fixed weighted mixture of the teachers' softened probabilities.

    Args:
        weights (dict | list): one weight per teacher (dict keyed by the way names,
            e.g. ``dict(mm=0.7, audio=0.3)``, or a list in teacher order).
        tau (float): temperature.
        loss_weight (float): weight of the KD loss.
    """

    def __init__(self, weights, tau: float = 4.0, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.weights_cfg = weights
        self.tau = tau
        self.loss_weight = loss_weight
        self.loss_kd: Optional[EnsembleKDLoss] = None

    def setup(self, way_names):
        super().setup(way_names)
        weights = self.weights_cfg
        if isinstance(weights, dict):
            unknown = sorted(set(weights) - set(self.way_names))
            missing = [n for n in self.way_names if n not in weights]
            if unknown or missing:
                raise KeyError(f'combiner.weights: unknown teachers {unknown}, missing '
                               f'{missing}; the teachers are {self.way_names}')
            weights = [weights[n] for n in self.way_names]
        elif len(weights) != len(self.way_names):
            raise ValueError(f'combiner.weights has {len(weights)} values for '
                             f'{len(self.way_names)} teachers {self.way_names}')
        self.loss_kd = EnsembleKDLoss(tau=self.tau, weights=list(weights),
                                      loss_weight=self.loss_weight)

    def forward(self, student_logits, teacher_logits):
        return {'loss_kd': self.loss_kd(student_logits, teacher_logits)}


@MODELS.register_module()
class MSTRouter(BaseTeacherCombiner):
    r"""MST-Distill's instance-level routing over (specialised) teachers.

    ``g = softmax(GateNet(z^S))`` (the student's logits, not detached, as in the
    official code); each sample distils from its ``topk`` teachers with
    :class:`RoutedKDLoss`, and :class:`LoadBalanceLoss` keeps the routing balanced:

    .. math:: L = w_{kl}\,s_{kl}\,L_{routed}(\tau) + w_{lb}\,s_{lb}\,L_{lb}

    where :math:`s_{kl}, s_{lb}` are schedule factors (1 unless
    :class:`~mmkd.engine.hooks.MSTStageHook` decays them, as the official code does).
    The fraction of samples routed to each teacher is logged as ``route.<name>``.

    Official hyper-parameters (``main-MST-Distill.py``): tau=4, topk=1, w_kl=1,
    w_lb=1, lb_mode='KL'.

    Args:
        num_classes (int): C, size of the student's logits (the GateNet input).
        topk (int): teachers per sample.
        tau (float): temperature of the routed KD.
        w_kl (float): weight of the routed KD loss.
        w_lb (float): weight of the load-balancing loss.
        lb_mode (str): 'KL' or 'CV'.
        dense (bool): (N, C, H, W) student logits: use :class:`DenseGateNet`.
    """

    def __init__(self, num_classes: int, topk: int = 1, tau: float = 4.0, w_kl: float = 1.0,
                 w_lb: float = 1.0, lb_mode: str = 'KL', dense: bool = False) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.dense = dense
        self.loss_kd = RoutedKDLoss(tau=tau, topk=topk, loss_weight=w_kl)
        self.loss_lb = LoadBalanceLoss(mode=lb_mode, loss_weight=w_lb)
        self.gate: Optional[nn.Module] = None
        # Schedule factors (official: w_kl halves every 30 epochs, w_lb x0.9 every 10);
        # recomputed by MSTStageHook from the iteration, so not saved.
        self.kd_scale = 1.0
        self.lb_scale = 1.0

    def setup(self, way_names):
        super().setup(way_names)
        if self.loss_kd.topk > len(self.way_names):
            raise ValueError(f'combiner.topk={self.loss_kd.topk} but there are only '
                             f'{len(self.way_names)} teachers {self.way_names}; valid: '
                             f'1..{len(self.way_names)}')
        gate_cls = DenseGateNet if self.dense else GateNet
        self.gate = gate_cls(self.num_classes, len(self.way_names))

    def forward(self, student_logits, teacher_logits):
        if self.gate is None:
            raise RuntimeError('MSTRouter.setup(way_names) was not called')
        gate_probs = torch.softmax(self.gate(student_logits), dim=1)
        losses = {
            'loss_kd': self.kd_scale * self.loss_kd(student_logits, teacher_logits, gate_probs),
            'loss_lb': self.lb_scale * self.loss_lb(gate_probs),
        }
        with torch.no_grad():
            chosen = topk_route(gate_probs, self.loss_kd.topk).flatten()
            counts = torch.bincount(chosen, minlength=len(self.way_names)).float()
            fractions = counts / counts.sum()
        for name, frac in zip(self.way_names, fractions):
            losses[f'route.{name}'] = frac
        return losses
