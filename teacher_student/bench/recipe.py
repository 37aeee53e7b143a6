"""The teacher recipe's ablation: what each training setting buys the teacher, over seeds.

    python -m teacher_student bench recipe --data DATA --seeds 0 1 2 --jobs 8 --out runs/recipe

Each arm trains the config's teacher on each seed's split (`data.seed`: the split of `bench
distill`'s teachers) with one change, in `OUT/seed<S>/<arm>`: today's recipe; label smoothing;
random erasing; weight averaging; cutmix; mirror images (`data.flip`, for data whose mirror
image is the same class); all of them; today's recipe and all of them at three times the epochs;
and on request all of them but one (`all-but-cutmix`, `all-but-cutmix-3x`...). The table gives
each arm's test accuracy, its gain over today's paired by seed with its 95% interval, and the
seconds its phases trained; arms with mirror images are also evaluated with test-time
augmentation (`<arm>+tta`). With `--jobs N`, N runs at a time, each in a process of its own
(seconds are then measured while sharing the machine).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from teacher_student import atomic, evaluation, jobs
from teacher_student import config as config_module
from teacher_student.bench import RECIPE_ARMS, RECIPE_LEAVE_ONE_OUT, RECIPE_SETTINGS
from teacher_student.bench.common import gpu_count, run_logged
from teacher_student.bench.distill_results import RESULT, paired
from teacher_student.run.directory import TEACHER, RunDir
from teacher_student.tables import markdown_table

TODAY = "today"
TTA = evaluation.TTA


def _phases(key: str, value, first: int = 0) -> Callable[[int], list[str]]:
    """`key: value` in every phase from `first` on, for a config of so many phases."""
    return lambda count: [f"phases.{i}.{key}={value}" for i in range(first, count)]


# One setting each. Weight averaging and cutmix leave the first phase (the warm-up) alone: an
# average that starts from random weights, or mixed images before the network sees any
# plain ones, are not what they are for.
SETTINGS: dict[str, Callable[[int], list[str]]] = {
    "smoothing": _phases("label_smoothing", 0.1),
    "erasing": _phases("erasing", 0.5),  # Zhong et al.'s choice for Fashion-MNIST
    "ema": _phases("ema_momentum", 0.995, first=1),
    "cutmix": _phases("mix", "cutmix", first=1),
    "flip": lambda count: ["data.flip=true"],
}
ARMS = (*RECIPE_ARMS, *RECIPE_LEAVE_ONE_OUT)
LONGER = "-3x"
assert tuple(SETTINGS) == RECIPE_SETTINGS and ARMS[0] == TODAY


def arm_overrides(arm: str, phases: Sequence) -> list[str]:
    """The config overrides of `arm`, for a config with these phases."""
    recipe = arm.removesuffix(LONGER)
    if recipe.startswith("all"):  # all, or all-but-SETTING
        names = [name for name in SETTINGS if recipe != f"all-but-{name}"]
    else:
        names = [] if recipe == TODAY else [recipe]
    overrides = [o for name in names for o in SETTINGS[name](len(phases))]
    if arm.endswith(LONGER):
        overrides += [f"phases.{i}.epochs={3 * phase.epochs}" for i, phase in enumerate(phases)]
    return overrides


def train_arm(data: str, seed: int, arm: str, out: Path, config: str | None,
              overrides: Sequence[str]) -> None:
    """The teacher of `arm` on `seed`'s split, its result written (skipped when it is)."""
    run_dir = RunDir(out / f"seed{seed}" / arm)
    if (run_dir.path / RESULT).exists():
        return
    base = [f"data.source={data}", f"data.seed={seed}", "measure_latency=false", *overrides]
    phases = config_module.load(config, base).phases
    loaded = config_module.load(config, [*base, *arm_overrides(arm, phases)])
    accuracy = jobs.train_teacher(loaded, run_dir, preflight=False)["accuracy"]
    rows = [{"model": arm, "accuracy": accuracy, "seconds": _seconds(run_dir)}]
    if loaded.data.flip:
        tta = next(row for row in evaluation.evaluate(run_dir, tta=True)
                   if row["model"] == TEACHER + TTA)
        rows.append({"model": arm + TTA, "accuracy": tta["accuracy"]})
    atomic.write_csv(pd.DataFrame(rows).assign(seed=seed), run_dir.path / RESULT)


def _seconds(run_dir: RunDir) -> float:
    """Seconds of the teacher's phases' epochs (compiling in their first epochs included)."""
    histories = [path for path in run_dir.path.rglob("history.csv")]
    return float(sum(pd.read_csv(path)["seconds"].sum() for path in histories))


def run(data: str, seeds: Sequence[int], arms: Sequence[str], out: Path, config: str | None,
        overrides: Sequence[str], jobs_at_once: int = 1) -> pd.DataFrame:
    """Every arm on every seed (in processes of their own with `jobs_at_once` > 1, the longest
    first); the table's frame, written as `OUT/recipe.csv` and `.md`."""
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        raise config_module.ConfigError(f"bench recipe: unknown arm {unknown[0]!r} (known: "
                                        f"{', '.join(ARMS)})")
    tasks = sorted(((seed, arm) for arm in arms for seed in seeds),
                   key=lambda task: not task[1].endswith(LONGER))
    if jobs_at_once > 1:
        _in_processes(data, tasks, out, config, overrides, jobs_at_once)
    for seed, arm in tasks:
        train_arm(data, seed, arm, out, config, overrides)
    frame = results(out, seeds)
    atomic.write_csv(frame, out / "recipe.csv")
    atomic.write_text(out / "recipe.md", format_table(frame) + "\n")
    return frame


def _in_processes(data: str, tasks: Sequence[tuple[int, str]], out: Path, config: str | None,
                  overrides: Sequence[str], jobs_at_once: int) -> None:
    gpus = gpu_count()

    def one(numbered: tuple[int, tuple[int, str]]) -> None:
        index, (seed, arm) = numbered
        command = [sys.executable, "-m", "teacher_student", "bench", "recipe", "--data", data,
                   "--seeds", str(seed), "--arms", arm, "--out", str(out),
                   *(["--config", config] if config else []),
                   *[part for override in overrides for part in ("--set", override)]]
        log = out / f"seed{seed}" / arm / "bench.log"
        if run_logged(command, log, index % gpus if gpus > 1 else None):
            print(f"bench recipe: seed {seed} {arm} failed, see {log}", flush=True)

    with ThreadPoolExecutor(jobs_at_once) as pool:
        list(pool.map(one, enumerate(tasks)))


def results(out: Path, seeds: Sequence[int]) -> pd.DataFrame:
    files = [path for seed in seeds for path in sorted((out / f"seed{seed}").glob(f"*/{RESULT}"))]
    if not files:
        raise config_module.ConfigError(f"bench recipe: no finished run under {out}")
    return pd.concat([pd.read_csv(path) for path in files], ignore_index=True)


def format_table(frame: pd.DataFrame) -> str:
    """Per arm: test accuracy mean and spread over seeds, its gain over today's recipe paired
    by seed with its 95% interval, and the mean seconds of its phases."""
    by_seed = frame.pivot_table(index="seed", columns="model", values="accuracy")
    seconds = frame.groupby("model")["seconds"].mean() if "seconds" in frame else {}
    order = [name for arm in ARMS for name in (arm, arm + TTA) if name in by_seed.columns]
    lines = []
    for name in order:
        scores = by_seed[name].dropna()
        line = {"arm": name, "mean": scores.mean(), "std": scores.std(ddof=1),
                "seeds": len(scores), "seconds": seconds.get(name)}
        if name != TODAY and TODAY in by_seed.columns:
            line["gain"] = paired((by_seed[name] - by_seed[TODAY]).dropna())
        lines.append(line)
    percent = lambda value: f"{100 * value:.2f}"  # noqa: E731
    return markdown_table(lines, [
        ("arm", "teacher recipe", ""), ("mean", "test accuracy %", percent),
        ("std", "± std", percent), ("seeds", "seeds", "d"),
        ("gain", "gain over today's, points [95% interval]", ""),
        ("seconds", "phases' seconds", ".0f")])
