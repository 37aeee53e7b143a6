"""`bench compare`: a change's speed against the code before it, from `bench train --json`
runs made in pairs (before, after, before, after, ... each in a fresh process, so that the
machine's drift falls on both sides alike).

For each (model, precision, batch, devices) both sides measured and each rate, the ratio
after / before of every pair, their geometric mean and its 95% interval (Student's t on the log
ratios, n - 1 degrees of freedom). "faster" or "slower" only when the interval leaves 1 out;
inside it the change is reported as no change. The PyTorch peer's files (scripts/torch_peer.py)
pair too: ours against the peer, run after run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from scipy import stats

from teacher_student.errors import UserError
from teacher_student.tables import markdown_table

# The rates a run may hold, and how the table names them.
RATES = {"device_fed_images_per_s": "on device", "trainer_images_per_s": "trainer fit",
         "keras_fit_images_per_s": "Keras fit"}
COLUMNS = [("model", "model", ""), ("precision", "precision", ""), ("batch", "batch", "d"),
           ("devices", "devices", "d"), ("rate", "img/s", ""), ("pairs", "pairs", "d"),
           ("before", "before, mean", ",.0f"), ("after", "after, mean", ",.0f"),
           ("ratio", "after / before [95% interval]", ""), ("verdict", "verdict", "")]


def read_report(path: str) -> dict:
    """A `bench train --json` file (or the peer's), or a message naming the file."""
    try:
        report = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: not a benchmark JSON file ({err})") from err
    if not isinstance(report, dict) or "results" not in report or "batch_size" not in report.get(
            "spec", {}):
        raise UserError(f"{path}: not a `bench train --json` file (no spec.batch_size or "
                        "results)")
    return report


def rates_of(report: dict) -> dict[tuple, float]:
    """{(model, precision, batch, devices, rate name): images per second} of one run."""
    batch = report["spec"]["batch_size"]
    return {(result["model"], result["precision"], batch, result.get("devices", 1), name): value
            for result in report["results"] for name, value in result.items()
            if name in RATES and value}


def paired_ratios(before: list[dict], after: list[dict]) -> list[dict]:
    """One row per figure measured on both sides of at least one pair."""
    if len(before) != len(after):
        raise UserError(f"bench compare pairs runs in the order given: {len(before)} before "
                        f"and {len(after)} after")
    pairs: dict[tuple, list[tuple[float, float]]] = {}
    for old, new in zip(before, after):
        old_rates, new_rates = rates_of(old), rates_of(new)
        for key in sorted(old_rates.keys() & new_rates.keys()):
            pairs.setdefault(key, []).append((old_rates[key], new_rates[key]))
    if not pairs:
        raise UserError("bench compare: no model, precision and batch measured on both sides")
    return [_row(key, values) for key, values in pairs.items()]


def mean_interval(values: Sequence[float]) -> tuple[float, float | None]:
    """The mean of paired values and the half width of its 95% interval (Student's t with
    n - 1 degrees of freedom); None for a single value."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    spread = math.sqrt(sum((x - mean) ** 2 for x in values) / (len(values) - 1))
    return mean, stats.t.ppf(0.975, len(values) - 1) * spread / math.sqrt(len(values))


def _row(key: tuple, values: list[tuple[float, float]]) -> dict:
    model, precision, batch, devices, rate = key
    mean, half = mean_interval([math.log(new / old) for old, new in values])
    row = {"model": model, "precision": precision, "batch": batch, "devices": devices,
           "rate": RATES[rate], "pairs": len(values),
           "before": sum(old for old, _ in values) / len(values),
           "after": sum(new for _, new in values) / len(values),
           "ratio": f"{math.exp(mean):.3f}", "verdict": "-"}
    if half is not None:
        low, high = math.exp(mean - half), math.exp(mean + half)
        row.update(ratio=f"{math.exp(mean):.3f} [{low:.3f}, {high:.3f}]",
                   verdict="faster" if low > 1 else "slower" if high < 1 else "no change")
    return row


def format_comparison(rows: list[dict]) -> str:
    return markdown_table(rows, COLUMNS)
