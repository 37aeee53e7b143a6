"""The `predict` command: which model answers, which images it is shown, and the CSV of answers.

The model is a run's (`--run-dir`: its distilled student unless `--which` says otherwise; the
float32 copy that `export` wrote in `RUN/export/` when there is one, else the run's own
`.keras`, with the run's classes and image size) or a file (`--model`: anything `export`
wrote, found through the `*_meta.json` beside it, or a `.keras` file of a run directory, such
as `RUN/student_distilled.keras` or a checkpoint's `best.keras`). The images are a folder
(searched recursively), a CSV with a `path` column (relative paths from the CSV's folder, as
written) or one image file, by the rules of every source (data/candidates.py): hidden files,
system folders such as `__MACOSX` and macOS's `._x.png` are left out, and said.

The CSV has one row per image that could be read: `path` (as found in the folder, or as
written in the input CSV), `class`, `probability`, then `class_2`, `probability_2`... for
`--top`. It is what a Kaggle submission is made from: join it on `path` to the competition's
ids. An image that cannot be read is left out, and said.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from teacher_student import atomic
from teacher_student.data.candidates import Listing, printable
from teacher_student.data.decoding import Decoding, decode_candidates
from teacher_student.data.sources.registry import PREDICT, list_source
from teacher_student.errors import RunDirError, UserError
from teacher_student.outputs.predict import Predictor, find_meta, load_predictor
from teacher_student.run.checkpoints import unreadable_model
from teacher_student.run.config import saved_config
from teacher_student.run.directory import (
    DEFAULT_MODELS,
    STUDENT_DISTILLED,
    STUDENT_SCRATCH,
    RunDir,
)

PREDICT_CHUNK = 64  # images decoded and classified together
RUN_LEVELS = 3  # a run's .keras: RUN/x.keras, RUN/student_distilled/, RUN/teacher/phase1_x/


@dataclass(frozen=True)
class Classifier:
    """A model ready to answer: what it takes, what its outputs mean, and in words which it
    is (printed before the predictions)."""
    path: Path
    predictor: Predictor
    class_names: list[str]
    image_size: int
    channels: int
    description: str


@dataclass(frozen=True)
class Prediction:
    path: str
    top: list[tuple[str, float]]  # (class name, probability), most likely first


def from_run(run_dir: RunDir, which: str | None = None) -> Classifier:
    """The run's model `which` (default: the distilled student, else the scratch one): its
    export in `RUN/export/` when there is one, else the run's own `.keras`."""
    config = saved_config(run_dir)
    if config is None:
        raise RunDirError(f"{run_dir.path} holds no run (no config.yaml): train one there, or "
                          "give a model file with --model")
    names = [which] if which else [n for n in DEFAULT_MODELS if run_dir.model_file(n).exists()]
    if not names:
        raise RunDirError(f"no student in {run_dir.path}: run distill with this --run-dir "
                          "first, or choose a model with --which")
    name = names[0]
    exported = run_dir.export_dir / f"{name}.keras"
    if exported.exists() and find_meta(exported) is not None:
        return from_file(exported, f"{exported}: the run's {_words(name)} as exported "
                                   "(float32)")
    path = run_dir.require_model(name, "run the job that trains it with this --run-dir first")
    return _run_model(path, run_dir, config,
                      f"{path}: the run's {_words(name)} (`export` writes a float32 copy for "
                      "deployment)")


def from_file(path: Path, description: str | None = None) -> Classifier:
    """A file `export` wrote (its `*_meta.json` beside it), or a `.keras` file of a run."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such model file or folder")
    found = find_meta(path)
    if found is not None:
        meta, output = found
        return Classifier(path, load_predictor(path, output), list(meta["class_names"]),
                          meta["image_size"], meta["channels"],
                          description or f"{path} ({meta['model']}, exported)")
    run_dir = _run_above(path) if path.suffix == ".keras" else None
    if run_dir is None:
        raise UserError(f"{path}: no *_meta.json beside it lists this file, and no run "
                        "directory (config.yaml, split.csv) holds it: use a file written by "
                        "the export command, a run's .keras file, or --run-dir")
    return _run_model(path, run_dir, saved_config(run_dir),
                      description or f"{path} (a model of the run in {run_dir.path})")


def _run_model(path: Path, run_dir: RunDir, config, description: str) -> Classifier:
    if why := unreadable_model(path):
        raise RunDirError(f"{path} cannot be read ({why}): `evaluate` with this --run-dir "
                          "rebuilds the run's models from their checkpoints")
    return Classifier(path, load_predictor(path, "logits"), run_dir.class_names(),
                      config.data.image_size, config.data.channels, description)


def _run_above(path: Path) -> RunDir | None:
    for folder in list(path.resolve().parents)[:RUN_LEVELS]:
        if (folder / "config.yaml").is_file() and (folder / "split.csv").is_file():
            return RunDir(folder)
    return None


def _words(name: str) -> str:
    return {STUDENT_DISTILLED: "distilled student",
            STUDENT_SCRATCH: "student trained from scratch"}.get(name, name)


def images_in(source: Path) -> Listing:
    """The images of `source` (a folder's files at any depth, sorted; a CSV's `path` column in
    its order; or one file), and what was left out, by the rules of every source
    (data/candidates.py: hidden files, `__MACOSX`, AppleDouble `._x.png`...)."""
    return list_source(PREDICT, str(source))


def classify(classifier: Classifier, images: Listing,
             top: int = 1) -> Iterator[Prediction | tuple[str, str]]:
    """A `Prediction` per decodable image and a (path, reason) pair per file left out or not
    decodable, paths as the input names them."""
    if top < 1:
        raise UserError(f"--top must be at least 1, got {top}")
    top = min(top, len(classifier.class_names))
    for path, reason in images.skipped:
        yield printable(path), reason
    decoding = Decoding(classifier.image_size, classifier.channels)
    for start in range(0, len(images.candidates), PREDICT_CHUNK):
        decoded = decode_candidates(images.candidates[start:start + PREDICT_CHUNK], decoding)
        for candidate in decoded.skipped:
            yield printable(candidate.name), candidate.problem
        if decoded.usable:
            answers = classifier.predictor(decoded.pixels[list(decoded.rows)])
            for candidate, probabilities in zip(decoded.usable, answers):
                best = np.argsort(probabilities)[::-1][:top]
                yield Prediction(candidate.name, [
                    (classifier.class_names[i], float(probabilities[i])) for i in best])


def format_prediction(prediction: Prediction) -> str:
    """`path<TAB>class<TAB>probability`, then further class/probability pairs for --top."""
    cells = [prediction.path]
    for class_name, probability in prediction.top:
        cells += [class_name, f"{probability:.4f}"]
    return "\t".join(cells)


def csv_columns(top: int) -> list[str]:
    columns = ["path", "class", "probability"]
    for rank in range(2, top + 1):
        columns += [f"class_{rank}", f"probability_{rank}"]
    return columns


def write_csv(predictions: Sequence[Prediction], path: Path) -> Path:
    """The predictions as a CSV (see the module's doc)."""
    top = max((len(p.top) for p in predictions), default=1)
    rows = [[p.path, *(value for pair in p.top for value in pair)] for p in predictions]
    return atomic.write_csv(pd.DataFrame(rows, columns=csv_columns(top)), Path(path))


def default_csv(source: Path, classifier: Classifier, run_dir: RunDir | None) -> Path:
    """Where the CSV goes without --out: `RUN/predictions/<input name>.csv` for a run, else
    `predictions/<input name>.csv` beside the model file."""
    folder = run_dir.path if run_dir is not None else classifier.path.parent
    name = Path(source).resolve().name
    return folder / "predictions" / f"{Path(name).stem or 'images'}.csv"
