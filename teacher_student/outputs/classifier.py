"""Which model the `predict` command asks, ready to answer (`Classifier`): what it takes, what
its outputs mean, and in words which it is.

The model is a run's (`from_run`, `--run-dir`: its distilled student unless `--which` says
otherwise; the float32 copy that `export` wrote in `RUN/export/` when there is one, else the
run's own `.keras`, with the run's classes and image size) or a file (`from_file`, `--model`:
anything `export` wrote, found through the `*_meta.json` beside it, or a `.keras` file of a run
directory, such as `RUN/student_distilled.keras` or a checkpoint's `best.keras`). Every model
answers probabilities; with test-time augmentation (`averaged_with_mirror`) they are averaged
with each image's left-right mirror's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from teacher_student.errors import RunDirError, UserError
from teacher_student.outputs.predict import Predictor, find_meta, load_predictor, with_mirror
from teacher_student.run.checkpoints import unreadable_model
from teacher_student.run.config import saved_config
from teacher_student.run.directory import (
    DEFAULT_MODELS,
    STUDENT_DISTILLED,
    STUDENT_SCRATCH,
    RunDir,
)

RUN_LEVELS = 3  # a run's .keras: RUN/x.keras, RUN/student_distilled/, RUN/teacher/phase1_x/


@dataclass(frozen=True)
class Classifier:
    """A model ready to answer: what it takes, what its outputs mean, and in words which it
    is (printed before the predictions)."""
    path: Path
    predictor: Predictor  # uint8 images -> probabilities
    class_names: list[str]
    image_size: int
    channels: int
    description: str
    flips: bool | None = None  # whether it trained on mirrored images (data.flip), if known


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
        return dataclasses.replace(
            from_file(exported, f"{exported}: the run's {_words(name)} as exported (float32)"),
            flips=config.data.flip)
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
                      config.data.image_size, config.data.channels, description,
                      config.data.flip)


def _run_above(path: Path) -> RunDir | None:
    for folder in list(path.resolve().parents)[:RUN_LEVELS]:
        if (folder / "config.yaml").is_file() and (folder / "split.csv").is_file():
            return RunDir(folder)
    return None


def _words(name: str) -> str:
    return {STUDENT_DISTILLED: "distilled student",
            STUDENT_SCRATCH: "student trained from scratch"}.get(name, name)


def averaged_with_mirror(classifier: Classifier) -> Classifier:
    """Test-time augmentation: the classifier answering each image's probabilities averaged
    with its left-right mirror's (for photos: a mirrored digit, letter or word is another
    image); its description says so, and says when the model never saw a mirrored image."""
    note = "; each image averaged with its left-right mirror (TTA)"
    if classifier.flips is False:
        note += (", although the run trained on no mirrored image (data.flip: false): right "
                 "for photos, wrong for digits and text")
    return dataclasses.replace(classifier, predictor=with_mirror(classifier.predictor),
                               description=classifier.description + note)
