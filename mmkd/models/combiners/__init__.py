"""Routing and combining several teachers (MST-Distill's router and its baselines)."""
from .gatenet import DenseGateNet, GateNet
from .teacher_combiners import AverageTeachers, BaseTeacherCombiner, FixedWeightTeachers, MSTRouter

__all__ = ['BaseTeacherCombiner', 'AverageTeachers', 'FixedWeightTeachers', 'MSTRouter', 'GateNet',
           'DenseGateNet']
