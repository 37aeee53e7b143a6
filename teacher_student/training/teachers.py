"""The teachers a student learns from: the run's own, or others listed in `distill.teachers`
(run directories or `.keras` files), checked against the run's classes and split (a listed
run's teacher must not have learnt from this run's test or validation images), and averaged
in probability at the distillation's temperature when there are several (Hinton et al. 2015
distil an ensemble this way). Each is rebuilt under the step's precision policy and frozen. A
teacher of another input size or channels sees the student's batch resized to its own input
inside the compiled step (`at_input`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras

from teacher_student.config import Config
from teacher_student.data.inputs import Inputs
from teacher_student.errors import ConfigError
from teacher_student.models.layers import ProbabilityAverage, ResizeTo
from teacher_student.models.precision import PrecisionPolicy
from teacher_student.outputs.convert import answers_probabilities
from teacher_student.run.directory import TEACHER, RunDir, unreadable_model


def teacher_file(entry: str) -> Path:
    """The `.keras` file of an entry of `distill.teachers`: a file, or a run's teacher."""
    path = Path(entry)
    return RunDir(path).model_file(TEACHER) if path.is_dir() else path


def check_teachers(config: Config, inputs: Inputs) -> None:
    """Every listed teacher can be read, answers for the run's classes and input, and never
    learnt from the images this run is measured on; a ConfigError naming its key otherwise,
    before anything trains."""
    for index, entry in enumerate(config.distill.teachers):
        key, path = f"distill.teachers.{index}", teacher_file(entry)
        if not path.exists():
            raise ConfigError(f"{key}: {entry} is neither a .keras file nor a run directory "
                              "holding teacher.keras")
        if why := unreadable_model(path):
            raise ConfigError(f"{key}: {path} cannot be read ({why})")
        if Path(entry).is_dir() and RunDir(Path(entry)).split_file.exists():
            _check_their_split(key, RunDir(Path(entry)), inputs)
        else:
            print(f"{key}: {path} is a bare .keras file: whether it learnt from this run's "
                  "validation or test images cannot be checked")
        model = keras.saving.load_model(path, safe_mode=True)
        if answers_probabilities(model):  # its softmax would flatten every soft target
            raise ConfigError(f"{key}: {path} answers probabilities (a file `export` wrote); "
                              "list the run directory, or its own teacher.keras, which "
                              "answers logits")
        shape, classes = tuple(model.input_shape[1:]), model.output_shape[-1]
        if classes != len(inputs.class_names):
            raise ConfigError(f"{key}: {path} answers {classes} classes; this run has "
                              f"{len(inputs.class_names)}")
        ours = tuple(config.student.input_shape)
        if shape != ours:
            if config.distill.method == "feature":
                raise ConfigError(f"{key}: {path} takes {shape} images, the student {ours}: "
                                  "the feature method compares feature maps of one image "
                                  "size; list a teacher of the student's input, or use kd")
            print(f"{key}: {path} takes {_size(shape)} images: it sees the student's "
                  f"{_size(ours)} batch resized to its own")


def _check_their_split(key: str, theirs: RunDir, inputs: Inputs) -> None:
    """The teacher's run has this run's classes, and learnt (its training split) or was
    chosen (its validation split) on none of the images this run tests on, and learnt from
    none it validates on: its answers there would teach the student the test."""
    names = theirs.class_names()
    if list(names) != list(inputs.class_names):
        raise ConfigError(f"{key}: {theirs.path} was trained on the classes {names}, this run "
                          f"has {list(inputs.class_names)}")
    split = theirs.read_split()
    seen = {_real(path): name for path, name in zip(split["path"], split["split"])}
    ours = {name: {_real(path) for path in inputs.splits[name].paths} for name in ("val", "test")}
    learnt = {name: sum(seen.get(path) in wrong for path in ours[name])
              for name, wrong in (("test", ("train", "val")), ("val", ("train",)))}
    if any(learnt.values()):
        raise ConfigError(
            f"{key}: {theirs.path} learnt from {learnt['test']} of this run's test images and "
            f"{learnt['val']} of its validation images (its split is another: another "
            "data.seed, source or fold); the student's test accuracy would be inflated. List a "
            "teacher trained on this run's split")


def _size(shape: Sequence[int]) -> str:
    """(32, 32, 1) -> '32x32 grey'."""
    height, width, channels = shape
    return f"{height}x{width} " + ("grey" if channels == 1 else "colour")


def _real(path: str) -> str:
    return str(Path(path).resolve())


def listed_teachers(entries: Sequence[str], policy: PrecisionPolicy,
                    input_shape: Sequence[int] | None = None) -> list[keras.Model]:
    """The listed teachers, with their weights, rebuilt under `policy`; each taking images of
    `input_shape` (the student's) when given."""
    models = []
    for index, entry in enumerate(entries):
        loaded = keras.saving.load_model(teacher_file(entry), safe_mode=True)
        teacher = policy.rebuild(keras.Model(loaded.input, loaded.output, name=f"teacher{index}"),
                                 float32_outputs=True)
        models.append(at_input(teacher, input_shape) if input_shape else teacher)
    return models


def at_input(teacher: keras.Model, shape: Sequence[int]) -> keras.Model:
    """`teacher` taking images of `shape`: each resized to the teacher's own input size and
    channels first (ResizeTo), inside whatever step calls it; the teacher itself if it takes
    that shape."""
    own = tuple(teacher.input_shape[1:])
    if own == tuple(shape):
        return teacher
    images = keras.Input(tuple(shape), dtype="uint8", name="image")
    resized = ResizeTo(*own, output_dtype=teacher.inputs[0].dtype,
                       name=f"{teacher.name}_input")(images)
    return keras.Model(images, teacher(resized), name=f"{teacher.name}_at_{shape[0]}px")


def ensemble(teachers: Sequence[keras.Model], temperature: float) -> keras.Model:
    """One model answering the teachers' average in probability (at `temperature`), as
    logits; a single teacher is returned as it is."""
    if len(teachers) == 1:
        return teachers[0]
    inputs = keras.Input(teachers[0].input_shape[1:], dtype=teachers[0].inputs[0].dtype,
                         name="image")
    averaged = ProbabilityAverage(temperature, dtype="float32", name="probability_average")(
        [teacher(inputs) for teacher in teachers])
    return keras.Model(inputs, averaged, name="teacher_ensemble")
