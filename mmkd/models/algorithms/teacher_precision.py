"""Moved to :mod:`mmkd.models.teachers.precision`; kept so old imports keep working."""
from ..teachers.precision import MODES, PRECISIONS, TeacherPrecision, first_device  # noqa: F401
