"""Does distillation beat training the student alone, and by how much of the teacher's lead?

    python -m teacher_student bench distill --data mnist --seeds 0 1 2 --out runs/distill

Per seed (which re-splits the data and re-initialises every model): the teacher is trained
once; then every variant (a distillation method and its settings) distils it, each in a run
directory of its own seeded with the teacher's files, and the student is trained from scratch
with the same augmentation, mixing, budget and schedule (one baseline per kind of mixing).
Writes each seed's results as they come (`seedS/results.csv`, so seeds can run in parallel
processes sharing `--out`), then `distillation.csv` (every run of the seeds asked for) and
`distillation.md` (per variant: test accuracy mean and standard deviation over the seeds, and
the share of the teacher-scratch gap it closed, (variant - scratch) / (teacher - scratch)).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from teacher_student import atomic, jobs
from teacher_student import config as config_module
from teacher_student.run_dir import RunDir
from teacher_student.tables import markdown_table

# name -> overrides of the config's distill section. The logit-standardization settings are
# its authors' (base temperature 2, KD weight 9); DKD's are its authors' CIFAR ones (alpha 1,
# beta 8, label loss weight 1) with a warm-up of one epoch.
VARIANTS = {
    "kd": ["distill.method=kd"],
    "kd+ls": ["distill.method=kd", "distill.standardize_logits=true", "distill.temperature=2",
              "distill.kd_weight=9"],
    "dkd": ["distill.method=dkd", "distill.alpha=1"],
    "dkd+ls": ["distill.method=dkd", "distill.alpha=1", "distill.standardize_logits=true",
               "distill.temperature=2"],
    "feature": ["distill.method=feature"],
    "kd+cutmix": ["distill.method=kd", "distill.mix=cutmix"],
    "kd+ls+cutmix": ["distill.method=kd", "distill.standardize_logits=true",
                     "distill.temperature=2", "distill.kd_weight=9", "distill.mix=cutmix"],
}
COPIED = ("config.yaml", "split.csv", "skipped_files.csv", "teacher.keras")


def run(data: str, seeds: Sequence[int], variants: Sequence[str], out: Path,
        config: str | None = None, overrides: Sequence[str] = ()) -> pd.DataFrame:
    """Every (seed, variant) run, resumable: a finished run is read back, not trained again."""
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise config_module.ConfigError(f"bench distill: unknown variant {unknown[0]!r} "
                                        f"(known: {', '.join(VARIANTS)})")
    frames = []
    for seed in seeds:
        rows: list[dict] = []
        results = out / f"seed{seed}" / "results.csv"
        base = [f"data.source={data}", f"data.seed={seed}", *overrides]
        teacher_run = RunDir(out / f"seed{seed}" / "teacher")
        # A finished teacher is evaluated again, not trained again.
        teacher = jobs.train_teacher(config_module.load(config, base), teacher_run)
        rows.append({"seed": seed, "model": "teacher", "accuracy": teacher["accuracy"]})
        baselines_done: set[str] = set()
        for name in variants:
            settings = config_module.load(config, [*base, *VARIANTS[name]])
            mix = settings.distill.mix
            wants_baseline = mix not in baselines_done
            run_dir = _seeded(teacher_run, out / f"seed{seed}" / name)
            if _accuracy(run_dir, "student_distilled") is None:
                settings = config_module.apply_overrides(
                    settings, [f"distill.baseline={str(wants_baseline).lower()}"])
                jobs.distill(settings, run_dir)
            rows.append({"seed": seed, "model": name,
                         "accuracy": _accuracy(run_dir, "student_distilled")})
            if wants_baseline:
                baselines_done.add(mix)
                rows.append({"seed": seed, "model": _scratch_name(mix),
                             "accuracy": _accuracy(run_dir, "student_scratch")})
            atomic.write_csv(pd.DataFrame(rows), results)
        frames.append(pd.DataFrame(rows))
    frame = pd.concat(frames, ignore_index=True)
    atomic.write_csv(frame, out / "distillation.csv")
    atomic.write_text(out / "distillation.md", format_table(frame, variants) + "\n")
    return frame


def format_table(frame: pd.DataFrame, variants: Sequence[str]) -> str:
    """Per model: mean and spread of the test accuracy over the seeds, gain over the matching
    baseline, and the share of the teacher-scratch gap closed."""
    by_model = frame.groupby("model")["accuracy"]
    mean, spread, count = by_model.mean(), by_model.std(ddof=1), by_model.count()
    teacher = mean["teacher"]
    lines = [{"model": "teacher", "mean": mean["teacher"], "std": spread["teacher"],
              "seeds": count["teacher"]}]
    scratches = [m for m in mean.index if m.startswith("scratch")]
    lines += [{"model": m, "mean": mean[m], "std": spread[m], "seeds": count[m]}
              for m in sorted(scratches)]
    for name in variants:
        mix = next((o.split("=")[1] for o in VARIANTS[name] if o.startswith("distill.mix=")),
                   "none")
        scratch = mean[_scratch_name(mix)]
        gap = teacher - scratch
        lines.append({"model": name, "mean": mean[name], "std": spread[name],
                      "seeds": count[name], "gain": mean[name] - scratch,
                      "gap_closed": (mean[name] - scratch) / gap if gap > 0 else None})
    percent = lambda value: f"{100 * value:.2f}"  # noqa: E731
    return markdown_table(lines, [
        ("model", "model", ""), ("mean", "test accuracy %", percent), ("std", "± std", percent),
        ("seeds", "seeds", "d"), ("gain", "vs scratch (points)", lambda v: f"{100 * v:+.2f}"),
        ("gap_closed", "gap closed", ".0%")])


def _scratch_name(mix: str) -> str:
    return "scratch" if mix == "none" else f"scratch+{mix}"


def _seeded(teacher_run: RunDir, path: Path) -> RunDir:
    """A run directory holding the teacher run's config, split and teacher: distilling there
    reuses the teacher without training it again."""
    run_dir = RunDir(path)
    run_dir.path.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        if (teacher_run.path / name).exists() and not (run_dir.path / name).exists():
            shutil.copy2(teacher_run.path / name, run_dir.path / name)
    return run_dir


def _accuracy(run_dir: RunDir, model: str) -> float | None:
    """The model's test accuracy from the run's comparison table, if it was evaluated."""
    table = run_dir.reports / "comparison.csv"
    if not table.exists():
        return None
    rows = pd.read_csv(table).set_index("model")["accuracy"]
    value = rows.get(model)
    return None if value is None or np.isnan(value) else float(value)
