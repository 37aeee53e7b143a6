"""The `predict` command's images and answers: which images the model is shown, and the CSV of
its answers. (Which model answers is classifier.py.)

The images are a folder (searched recursively), a CSV with a `path` column (relative paths from
the CSV's folder, as written) or one image file, by the rules of every source
(data/candidates.py): hidden files, system folders such as `__MACOSX` and macOS's `._x.png` are
left out, and counted.

The CSV is a submission in Kaggle's usual shape (`CsvShape`): one row per image that could be
read, `id` and `label`. The id is the file's name without its extension, or its path relative to
the input folder (for a CSV input, the path as the CSV writes it); two images that would share
an id are an error before anything runs. The label is the class name; with `top` > 1, the most
likely classes, most likely first, separated by spaces (the MAP@k shape). With `probabilities`,
a column per class holds its probability, as the classifier answers them (averaged with each
image's mirror's under test-time augmentation, classifier.py).
"""

from __future__ import annotations

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
from teacher_student.errors import UserError
from teacher_student.outputs.classifier import Classifier
from teacher_student.run.directory import RunDir
from teacher_student.words import counted

PREDICT_CHUNK = 64  # images decoded and classified together
IDS = {"stem": "the file name without its extension",
       "path": "the path relative to the input folder"}
SKIPPED_NAMED = 3  # skipped files the summary names; the others are counted


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


def images_in(source: Path) -> Listing:
    """The images of `source` (a folder's files at any depth, sorted; a CSV's `path` column in
    its order; or one file), and what was left out, by the rules of every source
    (data/candidates.py: hidden files, `__MACOSX`, AppleDouble `._x.png`...)."""
    return list_source(PREDICT, str(source))


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


def default_csv(source: Path, classifier: Classifier, run_dir: RunDir | None) -> Path:
    """Where the CSV goes without --out: `RUN/predictions/<input name>.csv` for a run, else
    `predictions/<input name>.csv` beside the model file."""
    folder = run_dir.path if run_dir is not None else classifier.path.parent
    name = Path(source).resolve().name
    return folder / "predictions" / f"{Path(name).stem or 'images'}.csv"
