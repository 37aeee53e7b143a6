"""What the preflight says (preflight.py): how a step runs, each step's line, the plan's
estimate against the time budget, and a failure's cause in one line."""

from __future__ import annotations

from teacher_student.training.steps import Execution
from teacher_student.training.timekeeping import format_duration


def cause(error: Exception) -> str:
    """The error's type and the line of its message that names the cause, without XLA's
    metadata (TensorFlow puts the op's traceback first and the cause last)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    causes = [line for line in lines
              if not line.startswith(("File ", "Detected at", "[[", "Hint:"))]
    text = (causes or lines or [""])[-1].split(", metadata=")[0]
    text = text.removeprefix("during context [Unknown]: ")
    return f"{type(error).__name__}: {text[:240]}"


def is_out_of_memory(error: Exception) -> bool:
    text = f"{type(error).__name__} {error}"
    return any(sign in text for sign in ("ResourceExhausted", "RESOURCE_EXHAUSTED",
                                         "Out of memory", "out of memory", "OOM when"))


def describe(execution: Execution) -> str:
    return f"{execution.policy.name}, XLA {'on' if execution.jit_compile else 'off'}"


def format_check(check) -> str:
    """A StepCheck's line."""
    return (f"  {check.label}: {check.first_step_s:.1f} s to build and compile, "
            f"train step {check.train_step_s * 1000:.1f} ms, validation step "
            f"{check.val_step_s * 1000:.1f} ms; {check.epochs_left} epoch"
            f"{'' if check.epochs_left == 1 else 's'} ~ "
            f"{format_duration(check.estimate_s)}"
            + (f" [{describe(check.execution)}]"
               if check.fallback else ""))


def against_budget(estimate: float, budget_left_s: float | None, checks) -> str:
    if budget_left_s is None:
        return ""
    if estimate <= budget_left_s:
        return f", within the time budget ({format_duration(budget_left_s)} left)"
    spent, where = 0.0, checks[-1].label
    for check in checks:
        spent += check.estimate_s
        if spent > budget_left_s:
            where = check.label
            break
    return (f"; the time budget ({format_duration(budget_left_s)} left) ends in {where}: "
            "the run stops there with everything saved, and the same command continues")
