"""teacher_student: a multi-scale CNN teacher with CBAM, trained in three phases and distilled
into a small, fast student, in float32 or mixed precision.

Nothing is imported until it is used (PEP 562): `python -m teacher_student` sets TensorFlow's
log level (quiet.py) before anything loads Keras."""

import importlib

_EXPORTS = {
    "Finding": "teacher_student.models.audit",
    "audit_dtypes": "teacher_student.models.audit",
    "list_casts": "teacher_student.models.audit",
    "PrecisionPolicy": "teacher_student.models.precision",
    "build_student": "teacher_student.models.student",
    "build_teacher": "teacher_student.models.teacher",
}
__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'teacher_student' has no attribute {name!r}")
