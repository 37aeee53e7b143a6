"""The `predict` command: which model answers, which images it is shown, and the CSV of answers.

The model is a run's (`--run-dir`: its distilled student unless `--which` says otherwise; the
float32 copy that `export` wrote in `RUN/export/` when there is one, else the run's own
`.keras`, with the run's classes and image size) or a file (`--model`: anything `export`
wrote, found through the `*_meta.json` beside it, or a `.keras` file of a run directory, such
as `RUN/student_distilled.keras` or a checkpoint's `best.keras`). The images are a folder
(searched recursively), a CSV with a `path` column (relative paths from the CSV's folder, as
written) or one image file, by the rules of every source (data/candidates.py): hidden files,
system folders such as `__MACOSX` and macOS's `._x.png` are left out, and counted.

The CSV is a submission in Kaggle's usual shape (`CsvShape`): one row per image that could be
read, `id` and `label`. The id is the file's name without its extension, or its path relative to
the input folder (for a CSV input, the path as the CSV writes it); two images that would share
an id are an error before anything runs. The label is the class name; with `top` > 1, the most
likely classes, most likely first, separated by spaces (the MAP@k shape). With `probabilities`,
a column per class holds its probability. Every model answers probabilities; with test-time
augmentation (`averaged_with_mirror`) they are averaged with each image's left-right mirror's.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

import numpy as np
import pandas as pd

from teacher_student import atomic
from teacher_student.data.candidates import Candidate, Listing, printable
from teacher_student.data.decoding import Decoding, decode_candidates
from teacher_student.data.sources.registry import PREDICT, list_source
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

PREDICT_CHUNK = 64  # images decoded and classified together
RUN_LEVELS = 3  # a run's .keras: RUN/x.keras, RUN/student_distilled/, RUN/teacher/phase1_x/
IDS = {"stem": "the file name without its extension",
       "path": "the path relative to the input folder"}
SKIPPED_NAMED = 3  # skipped files the summary names; the others are counted


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


@dataclass(frozen=True)
class Prediction:
    id: str  # what the CSV names the image by (`Naming`)
    probabilities: np.ndarray  # one per class, in the classifier's order

    def ranked(self, top: int) -> list[int]:
        """The `top` most likely classes, most likely first."""
        return [int(i) for i in np.argsort(-self.probabilities, kind="stable")[:top]]


@dataclass(frozen=True)
class CsvShape:
    """How the CSV is written: what the id is (a key of IDS), the two columns' names, how many
    classes the label cell lists, and whether a column per class gives its probability."""
    ids: str = "stem"
    columns: tuple[str, str] = ("id", "label")
    top: int = 1
    probabilities: bool = False

    def check(self, class_names: Sequence[str]) -> None:
        """A UserError for a CSV that could not be read back as meant, before anything runs."""
        if self.ids not in IDS:
            raise UserError(f"--ids must be one of {', '.join(IDS)}, got {self.ids!r}")
        if self.top < 1:
            raise UserError(f"--top must be at least 1, got {self.top}")
        if self.columns[0] == self.columns[1]:
            raise UserError(f"--columns: the id and the label need two names, got "
                            f"{self.columns[0]!r} twice")
        for name in class_names:
            if self.probabilities and name in self.columns:
                raise UserError(f"--probabilities: the class {name!r} would be a second "
                                f"column {name!r}: name the two columns otherwise (--columns)")
            if self.top > 1 and len(name.split()) != 1:
                raise UserError(f"--top {self.top}: the label cell lists classes separated "
                                f"by spaces, and the class {name!r} holds one; "
                                "--probabilities gives every class's probability instead")


@dataclass(frozen=True)
class Naming:
    """How the CSV and the messages name each image: relative to the input folder (the folder
    given, or the image file's), or a CSV's paths as the CSV writes them; as an id, `ids`."""
    folder: Path
    ids: str = "stem"

    @classmethod
    def of(cls, source: Path, ids: str = "stem") -> Naming:
        return cls(source if source.is_dir() else source.parent, ids)

    def relative(self, path: str) -> str:
        """`path` relative to the input folder, with forward slashes, printable."""
        try:
            path = PurePath(path).relative_to(self.folder).as_posix()
        except ValueError:  # a path the input did not find under its folder: as given
            pass
        return printable(str(path))

    def name(self, candidate: Candidate) -> str:
        """The file relative to the input folder, or as the CSV that lists it writes it."""
        return self.relative(candidate.path) if candidate.shown is None else \
            printable(candidate.shown)

    def id(self, candidate: Candidate) -> str:
        name = PurePath(self.name(candidate))
        return name.stem if self.ids == "stem" else name.as_posix()

    def check_unique(self, images: Listing) -> None:
        """A UserError naming the first id that several usable images would share."""
        names = defaultdict(list)
        for candidate in images.candidates:
            if candidate.problem is None:
                names[self.id(candidate)].append(self.name(candidate))
        shared = {key: found for key, found in names.items() if len(found) > 1}
        if shared:
            key, found = next(iter(shared.items()))
            way = ("--ids path names each by its path relative to the input folder"
                   if self.ids == "stem" else "the input lists the same file more than once")
            raise UserError(f"{counted(len(shared), 'id')} would name several images (first: "
                            f"{key!r}, for {', '.join(found)}): "
                            f"{way}")


@dataclass(frozen=True)
class Written:
    """What `write_predictions` did, and the line that says it."""
    path: Path
    predicted: int
    skipped: list[tuple[str, str]]  # (file as the messages name it, why)
    ids: str

    def summary(self) -> str:
        line = f"{counted(self.predicted, 'prediction')} written to {self.path} (id: " \
               f"{IDS[self.ids]})"
        return line + (f"; {skipped_words(self.skipped)}" if self.skipped else "")


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


def images_in(source: Path) -> Listing:
    """The images of `source` (a folder's files at any depth, sorted; a CSV's `path` column in
    its order; or one file), and what was left out, by the rules of every source
    (data/candidates.py: hidden files, `__MACOSX`, AppleDouble `._x.png`...)."""
    return list_source(PREDICT, str(source))


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


def classify(classifier: Classifier, images: Listing,
             naming: Naming) -> Iterator[Prediction | tuple[str, str]]:
    """A `Prediction` per decodable image and a (file, reason) pair per file left out or not
    decodable, named by `naming`, in the input's order."""
    for path, reason in images.skipped:
        yield naming.relative(path), reason
    decoding = Decoding(classifier.image_size, classifier.channels)
    for start in range(0, len(images.candidates), PREDICT_CHUNK):
        decoded = decode_candidates(images.candidates[start:start + PREDICT_CHUNK], decoding)
        for candidate in decoded.skipped:
            yield naming.name(candidate), candidate.problem
        if decoded.usable:
            answers = classifier.predictor(decoded.pixels[list(decoded.rows)])
            for candidate, probabilities in zip(decoded.usable, answers):
                yield Prediction(naming.id(candidate), np.asarray(probabilities, np.float32))


def write_predictions(classifier: Classifier, source: Path, out: Path,
                      shape: CsvShape = CsvShape(),
                      each: Callable[[Prediction | tuple[str, str]], None] | None = None
                      ) -> Written:
    """Classifies the images of `source` into the CSV `out` (see the module's doc), calling
    `each` with every prediction and every file skipped as they come. A UserError when no
    image could be classified, or the CSV could not be read back as meant (nothing is written
    then)."""
    source = Path(source)
    shape.check(classifier.class_names)
    images = images_in(source)
    naming = Naming.of(source, shape.ids)
    naming.check_unique(images)
    found, skipped = [], []
    for result in classify(classifier, images, naming):
        (found if isinstance(result, Prediction) else skipped).append(result)
        if each is not None:
            each(result)
    if not found:
        raise UserError(f"no image could be classified in {source}: {skipped_words(skipped)}")
    atomic.write_csv(submission(found, classifier.class_names, shape), Path(out))
    return Written(Path(out), len(found), skipped, shape.ids)


def submission(predictions: Sequence[Prediction], class_names: Sequence[str],
               shape: CsvShape) -> pd.DataFrame:
    """The CSV's table: id and label columns, then each class's probability if asked."""
    top = min(shape.top, len(class_names))
    id_column, label_column = shape.columns
    table = pd.DataFrame({
        id_column: [p.id for p in predictions],
        label_column: [" ".join(class_names[i] for i in p.ranked(top)) for p in predictions]})
    if shape.probabilities:
        probabilities = np.stack([p.probabilities for p in predictions]).round(6)
        for index, name in enumerate(class_names):
            table[name] = probabilities[:, index]
    return table


def format_prediction(prediction: Prediction, class_names: Sequence[str], top: int = 1) -> str:
    """`id<TAB>class<TAB>probability`, then further class/probability pairs for `top`."""
    cells = [prediction.id]
    for index in prediction.ranked(min(top, len(class_names))):
        cells += [class_names[index], f"{prediction.probabilities[index]:.4f}"]
    return "\t".join(cells)


def skipped_words(skipped: Sequence[tuple[str, str]]) -> str:
    """"2 skipped: a.txt (not an image extension), ._b.png (hidden file)": the first few named
    with the reason, the rest counted."""
    named = ", ".join(f"{name} ({reason})" for name, reason in skipped[:SKIPPED_NAMED])
    more = len(skipped) - SKIPPED_NAMED
    return f"{len(skipped)} skipped: {named}" + (f", and {more} more" if more > 0 else "")


def counted(count: int, word: str) -> str:
    """"1 prediction", "2 predictions", "10,000 predictions"."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def default_csv(source: Path, classifier: Classifier, run_dir: RunDir | None) -> Path:
    """Where the CSV goes without --out: `RUN/predictions/<input name>.csv` for a run, else
    `predictions/<input name>.csv` beside the model file."""
    folder = run_dir.path if run_dir is not None else classifier.path.parent
    name = Path(source).resolve().name
    return folder / "predictions" / f"{Path(name).stem or 'images'}.csv"
