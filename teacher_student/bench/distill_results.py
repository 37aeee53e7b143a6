"""What the distillation benchmark found (distill.py): each run's result file, and the table
over seeds: per variant, test accuracy mean and standard deviation, the gain over its baseline
paired by seed with its 95% interval, McNemar's exact test of it over the test images (pooled
over the seeds: the images the student answers right and its baseline wrong, against the
reverse), the share of the teacher-scratch gap closed, (variant - scratch) / (teacher -
scratch), and how often the student agrees with its teacher.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from scipy import stats

from teacher_student import atomic
from teacher_student.bench import DISTILL_VARIANTS as VARIANTS
from teacher_student.bench.paired_rates import mean_interval
from teacher_student.evaluation import TEST_ANSWERS
from teacher_student.run.directory import STUDENT_DISTILLED, STUDENT_SCRATCH, TEACHER, RunDir
from teacher_student.tables import markdown_table

RESULT = "result.csv"


def results(out: Path, seeds: Sequence[int]) -> pd.DataFrame:
    """Every finished run's result under `out` for these seeds."""
    files = [path for seed in seeds for path in sorted((out / f"seed{seed}").glob(f"*/{RESULT}"))]
    return pd.concat([pd.read_csv(path) for path in files], ignore_index=True)


def table(out: Path, seeds: Sequence[int]) -> tuple[pd.DataFrame, str]:
    """The results under `out` for these seeds, and their table with McNemar's tests."""
    frame = results(out, seeds)
    return frame, format_table(frame, discordant_images(out, seeds, frame))


def discordant_images(out: Path, seeds: Sequence[int], frame: pd.DataFrame
                      ) -> dict[str, tuple[int, int]]:
    """Per student run: over its seeds' test images, how many it answers right where its
    baseline (same seed, same test images) answers wrong, and the reverse."""
    counts = {}
    for name in sorted(set(frame["model"])):
        scratch = scratch_of(name)
        if name == scratch or name.startswith(TEACHER):
            continue
        right_only = wrong_only = 0
        for seed in seeds:
            ours = _right(out / f"seed{seed}" / name, STUDENT_DISTILLED)
            theirs = _right(out / f"seed{seed}" / scratch, STUDENT_SCRATCH)
            if ours is None or theirs is None or len(ours) != len(theirs):
                continue
            right_only += int((ours & ~theirs).sum())
            wrong_only += int((~ours & theirs).sum())
        if right_only or wrong_only:
            counts[name] = (right_only, wrong_only)
    return counts


def _right(run: Path, model: str):
    """Which test images the run's `model` answers right (a bool Series), or None."""
    path = run / "reports" / TEST_ANSWERS
    if not path.exists():
        return None
    answers = pd.read_csv(path)
    return (answers[model] == answers["label"]) if model in answers else None


def mcnemar(right_only: int, wrong_only: int) -> str:
    """McNemar's exact test: `right_only` / `wrong_only` and the two-sided p of so uneven a
    split of the discordant images under no difference."""
    p = stats.binomtest(right_only, right_only + wrong_only, 0.5).pvalue
    return f"{right_only} / {wrong_only}, p {p:.2g}"


def format_table(frame: pd.DataFrame,
                 discordant: dict[str, tuple[int, int]] | None = None) -> str:
    """Per model: mean and spread of the test accuracy over the seeds; for a student, its gain
    over the baseline of its mixing and student, paired by seed (the same split and teacher),
    with its 95% interval, and the share of the teacher-scratch gap closed on those seeds; for
    a student of several teachers (`*-ensemble`, `*-folds`), its gain over the same method
    taught by one teacher, paired the same way."""
    by_seed = frame.pivot_table(index="seed", columns="model", values="accuracy")
    teachers = sorted(name for name in by_seed.columns if name.startswith(TEACHER))
    order = [*teachers, *(name for name in by_seed.columns
                          if name.split("@")[0] in VARIANTS)]
    lines = []
    for name in order:
        scores = by_seed[name].dropna()
        line = {"model": name, "mean": scores.mean(), "std": scores.std(ddof=1),
                "seeds": len(scores)}
        scratch = scratch_of(name)
        if name not in teachers and scratch != name and scratch in by_seed.columns:
            gains = (by_seed[name] - by_seed[scratch]).dropna()
            gap = (by_seed[TEACHER] - by_seed[scratch])[gains.index].mean()
            line.update(gain=paired(gains), gap_closed=gains.mean() / gap if gap > 0 else None)
        if name in (discordant or {}):
            line["mcnemar"] = mcnemar(*discordant[name])
        if "agreement" in frame:
            line["agreement"] = frame.loc[frame["model"] == name, "agreement"].mean()
        one_teacher = one_teacher_of(name)
        if one_teacher in by_seed.columns:
            line["over_one"] = paired((by_seed[name] - by_seed[one_teacher]).dropna())
        lines.append(line)
    percent = lambda value: f"{100 * value:.2f}"  # noqa: E731
    columns = [
        ("model", "model", ""), ("mean", "test accuracy %", percent), ("std", "± std", percent),
        ("seeds", "seeds", "d"), ("gain", "gain over scratch, points [95% interval]", ""),
        ("gap_closed", "gap closed", ".0%")]
    if any("mcnemar" in line for line in lines):
        columns.append(("mcnemar", "images right only / wrong only, McNemar", ""))
    if any(isinstance(line.get("agreement"), float) and line["agreement"] == line["agreement"]
           for line in lines):
        columns.append(("agreement", "agrees with teacher", ".1%"))
    if any("over_one" in line for line in lines):
        columns.append(("over_one", "gain over the same method from the seed's teacher, "
                        "points [95% interval]", ""))
    return markdown_table(lines, columns)


def paired(differences: pd.Series) -> str:
    """A paired difference in points: its mean and the 95% interval of the mean (Student's t
    with n-1 degrees of freedom), or the mean alone for one seed."""
    mean, half = mean_interval(list(100 * differences))
    if half is None:
        return f"{mean:+.2f}"
    return f"{mean:+.2f} [{mean - half:+.2f}, {mean + half:+.2f}]"


def one_teacher_of(name: str) -> str | None:
    """What a student of several teachers, or of a teacher at another resolution, is compared
    with: the same method from the seed's one teacher."""
    variant, at, student = name.partition("@")
    for suffix in ("-ensemble", "-folds", "-resized"):
        if variant.endswith(suffix):
            return variant.removesuffix(suffix) + at + student
    return None


def scratch_of(name: str) -> str:
    """The baseline a run is compared with: the same student, the same mixing, no teacher."""
    variant, _, student = name.partition("@")
    mix = next((o.split("=")[1] for o in VARIANTS.get(variant, [])
                if o.startswith("distill.mix=")), "none")
    return ("scratch" if mix == "none" else f"scratch+{mix}") + (f"@{student}" if student
                                                                  else "")


def write_result(run_dir: RunDir, seed: int, model: str, accuracy: float,
                 others: dict[str, float] | None = None,
                 agreement: float | None = None) -> None:
    """The run's accuracy (and a student's agreement with its teacher), and `others`
    (another model's name -> its accuracy) it measured."""
    rows = [{"seed": seed, "model": name, "accuracy": value}
            for name, value in {model: accuracy, **(others or {})}.items()]
    if agreement is not None:
        rows[0]["agreement"] = agreement
    atomic.write_csv(pd.DataFrame(rows), run_dir.path / RESULT)
