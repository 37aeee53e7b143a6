"""teacher_student: a multi-scale CNN teacher with CBAM, trained in three phases and distilled
into a small, fast student, in float32 or mixed precision."""

from teacher_student.models.audit import Finding, audit_dtypes, list_casts
from teacher_student.models.precision import PrecisionPolicy
from teacher_student.models.student import build_student
from teacher_student.models.teacher import build_teacher

__all__ = ["Finding", "PrecisionPolicy", "audit_dtypes", "build_student", "build_teacher",
           "list_casts"]
__version__ = "0.1.0"
