"""Frozen teachers: built, loaded, frozen, hidden and run in one place (see teacher_set)."""
from .compile import TeacherCompile, to_channels_last
from .precision import TeacherPrecision, first_device
from .teacher_set import TeacherSet, build_teacher, freeze, teachers_not_loaded

__all__ = ['TeacherCompile', 'TeacherPrecision', 'TeacherSet', 'build_teacher', 'first_device', 'freeze',
           'teachers_not_loaded', 'to_channels_last']
