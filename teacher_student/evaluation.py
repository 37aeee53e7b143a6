"""The run's models on its test split: the `evaluate` job, and the comparison every training
job ends with.

Every model of the run is evaluated from its saved file (a plain single-device model, whatever
trained it), beside the teachers `distill.teachers` lists (and their ensemble) when it lists
some, and what always answering the majority class scores; the comparison is written as
`reports/comparison.csv` and `.md`, with the students of the run's variants (`distill` with
other settings on the same teacher, in `variants/<name>/`), and the figures that compare the
models (reliability, accuracy against CPU latency, the students' curves). A model that is
missing or cannot be read back is rebuilt from the best checkpoint of the step that made it,
where that step has finished.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from teacher_student import atomic
from teacher_student.config import Config
from teacher_student.data.batches import Batches
from teacher_student.data.inputs import Inputs, prepare_inputs
from teacher_student.errors import RunDirError
from teacher_student.models.precision import PrecisionPolicy, resolve
from teacher_student.outputs import latency, metrics, model_plots, plots, reports
from teacher_student.run import lock
from teacher_student.run.checkpoints import unreadable_model
from teacher_student.run.config import saved_config
from teacher_student.run.directory import MODEL_NAMES, STUDENT_DISTILLED, TEACHER, RunDir
from teacher_student.training.steps import Execution, Step, plan_steps
from teacher_student.training.steps.self_training import best_teacher
from teacher_student.training.steps.teacher_fold import fold_name
from teacher_student.training.teachers import ensemble, listed_teachers, teacher_file
from teacher_student.words import counted

ENSEMBLE = "teacher_ensemble"  # the listed teachers' ensemble, in the comparison
TTA = "+tta"  # a model's row with test-time augmentation: `evaluate --tta`
# Each model's class for each test image, in the test split's order: what a paired test over
# test images (McNemar's, bench/distill_results.py) compares
TEST_ANSWERS = "test_answers.csv"


@dataclass(frozen=True)
class RunModels:
    """What evaluating a run's models needs: its config, directory, test batches and classes;
    and its plan, with how each step runs, to rebuild a model from its step's checkpoints."""
    config: Config  # resolved: model shapes and class count filled in
    run_dir: RunDir
    test: Batches
    class_names: tuple[str, ...]
    labeled_images: int  # of the training split
    plan: tuple[Step, ...]
    executions: Mapping[str, Execution]
    tta: bool = False  # also each model averaged with the mirror images (rows name+tta)


def evaluate(run_dir: RunDir, tta: bool = False) -> list[dict]:
    """Every model of a run on its own test split, with the run's own config (saved in it),
    under the run's lock; writes only the reports. The comparison's rows; with `tta`, also each
    model with test-time augmentation."""
    with lock.hold(run_dir.path):
        config = saved_config(run_dir)
        if config is None:
            raise RunDirError(f"{run_dir.path} holds no run (no config.yaml): train one there "
                              "first")
        run_dir.check_writable()  # for the reports
        inputs = prepare_inputs(config.data, run_dir, config.data.batch_size)
        config = config.with_dataset(len(inputs.class_names))
        policy, why = resolve(config.precision)
        print(why)
        if tta and not config.data.flip:
            print("test-time augmentation averages each image with its mirror, although the "
                  "run trained on no mirrored image (data.flip: false): right for photos, "
                  "wrong for digits, letters or text")
        plan = tuple(plan_steps(config, run_dir))
        return compare(RunModels(config, run_dir, inputs.test, inputs.class_names,
                                 len(inputs.splits["train"].paths), plan,
                                 {step.name: Execution(policy, False) for step in plan}, tta))


def compare(run: RunModels) -> list[dict]:
    """Every model of the run on the test split, and the majority-class row; the reports and
    figures written (see the module's doc). The rows."""
    names = [name for name in MODEL_NAMES if run.run_dir.model_file(name).exists()]
    if not names:
        raise RunDirError(f"no trained model in {run.run_dir.path}: run train-teacher first")
    listed = _listed_teachers(run)
    # Evaluated, not timed: each fold's teacher (their ensemble is the teacher), each
    # self-training round's network.
    others = [*run.run_dir.fold_teachers(), *run.run_dir.round_teachers()]
    evaluations = {**listed, **{name: evaluate_saved(run, name) for name in [*others, *names]}}
    if run.tta:
        evaluations |= {name + TTA: evaluate_saved(run, name, mirrored=True) for name in names}
    # What the students are compared with: the teacher they learnt from.
    reference = next(reversed(listed)) if listed else best_teacher(run.run_dir)
    # The run's own models are timed (unless measure_latency says not to); no other.
    paths = ({name: run.run_dir.model_file(name) for name in names}
             if run.config.measure_latency else {})
    cpu = latency.measure_once(list(paths.values()), run.run_dir.reports / "latency.json",
                               tflite=True) if paths else None
    rows = [{**row, **(cpu.columns(paths[row["model"]]) if row["model"] in paths else {})}
            for row in reports.with_teacher_agreement(evaluations, reference)]
    for variant in run.run_dir.variants():
        rows += variant_rows(_comparison_rows(variant), variant.path.name)
    # Over the labels as the models' answers came (every test image, in the split's order).
    answered = next(iter(evaluations.values())).labels.astype(np.int64)
    rows.append(reports.chance_row(answered, len(run.class_names)))
    reports.write_comparison(rows, run.run_dir.reports, _notes(run, names))
    write_test_answers(evaluations, run.run_dir.reports / TEST_ANSWERS)
    model_plots.plot_reliability(
        {name: metrics.reliability(e.probabilities, e.labels) for name, e in evaluations.items()},
        run.run_dir.reports / "reliability.png")
    students = {"distilled": run.run_dir.distillation.read_history(),
                "scratch": run.run_dir.baseline.read_history()}
    if any(not frame.empty for frame in students.values()):
        teacher = evaluations.get(TEACHER)
        plots.plot_student_curves(students, teacher.row["accuracy"] if teacher else None,
                                  run.run_dir.reports / "student_curves.png")
    return rows


def write_test_answers(evaluations: Mapping[str, reports.Evaluation], path: Path) -> None:
    """One row per test image (the split's order): its label and each model's answer."""
    labels = next(iter(evaluations.values())).labels
    frame = pd.DataFrame({"label": labels, **{name: evaluation.probabilities.argmax(axis=-1)
                                              for name, evaluation in evaluations.items()}})
    atomic.write_csv(frame, path)


def out_of_fold(run_dir: RunDir, inputs: Inputs) -> float:
    """Each fold's teacher on the images it was validated on (data.folds): every training and
    validation image answered once, by the teacher that never trained on it. Written as
    `reports/out_of_fold.csv` (path, fold, label, predicted, each class's probability); the
    out-of-fold accuracy, said and returned."""
    frames = []
    for fold, ((_, held), (_, batches)) in enumerate(zip(inputs.folds, inputs.fold_batches),
                                                     start=1):
        model = keras.saving.load_model(run_dir.model_file(fold_name(fold)), safe_mode=True)
        labels, probabilities = reports.predict_probabilities(model, batches)
        frame = pd.DataFrame(probabilities, columns=list(inputs.class_names))
        frame.insert(0, "path", list(held.paths))
        frame.insert(1, "fold", fold)
        frame.insert(2, "label", [inputs.class_names[y] for y in labels])
        frame.insert(3, "predicted", [inputs.class_names[y] for y in probabilities.argmax(-1)])
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    atomic.write_csv(table, run_dir.reports / "out_of_fold.csv")
    accuracy = float((table["label"] == table["predicted"]).mean())
    print(f"out-of-fold accuracy {accuracy:.2%} ({len(frames)} folds, {len(table):,} training "
          f"and validation images; {run_dir.reports / 'out_of_fold.csv'})")
    return accuracy


def _listed_files(run: RunModels) -> dict[str, Path]:
    """The teachers `distill.teachers` lists, by their names in the comparison."""
    files = [teacher_file(entry) for entry in run.config.distill.teachers]
    if len(files) == 1:
        return {"listed_teacher": files[0]}
    return {f"listed_teacher{index}": file for index, file in enumerate(files, start=1)}


def _listed_teachers(run: RunModels) -> dict[str, reports.Evaluation]:
    """The listed teachers on the test split, and, when there are several, their ensemble
    (averaged in probability), the last: what the distilled student learnt from (a teacher of
    another input size sees the test images at the student's, resized, as it taught)."""
    files = _listed_files(run)
    loaded = listed_teachers(run.config.distill.teachers, PrecisionPolicy("float32"),
                             run.config.student.input_shape)
    models = dict(zip(files, loaded))
    found = {name: reports.evaluate_classifier(name, model, run.test, run.class_names,
                                               run.run_dir.reports, files[name])
             for name, model in models.items()}
    if len(models) > 1:
        found[ENSEMBLE] = reports.evaluate_classifier(
            ENSEMBLE, ensemble(list(models.values()), 1.0), run.test, run.class_names,
            run.run_dir.reports, list(files.values()))
    return found


def variant_rows(rows: Sequence[Mapping], name: str) -> list[dict]:
    """A variant's students, as its run's comparison shows them: `student_distilled@name`."""
    return [{**row, "model": f"{row['model']}@{name}"} for row in rows
            if str(row["model"]).startswith("student_")]


def _comparison_rows(run_dir: RunDir) -> list[dict]:
    path = run_dir.reports / "comparison.csv"
    return pd.read_csv(path).to_dict("records") if path.exists() else []


def evaluate_saved(run: RunModels, name: str, mirrored: bool = False) -> reports.Evaluation:
    """The run's model `name` on the test split; `mirrored`: with test-time augmentation."""
    path = readable_model(run.run_dir, run.plan, run.executions, name)
    model = keras.saving.load_model(path, safe_mode=True)
    if mirrored:
        model, name = averaged_with_mirror(model), name + TTA
    return reports.evaluate_classifier(name, model, run.test, run.class_names,
                                       run.run_dir.reports, path)


def averaged_with_mirror(model: keras.Model) -> keras.Model:
    """Test-time augmentation: a model whose logits are the log of `model`'s probabilities
    averaged over each image and its left-right mirror (their softmax is that average)."""
    images = keras.Input(model.input_shape[1:], dtype=model.inputs[0].dtype)
    mirrored = keras.layers.Lambda(lambda batch: keras.ops.flip(batch, axis=2))(images)
    average = keras.layers.Lambda(_log_mean_probabilities, dtype="float32")
    return keras.Model(images, average([model(images), model(mirrored)]),
                       name=f"{model.name}_tta")


def _log_mean_probabilities(logits):
    probabilities = [keras.ops.softmax(keras.ops.cast(each, "float32")) for each in logits]
    return keras.ops.log(keras.ops.mean(keras.ops.stack(probabilities), axis=0) + 1e-12)


def readable_model(run_dir: RunDir, plan: Sequence[Step], executions: Mapping[str, Execution],
                   name: str) -> Path:
    """The run's model `name`; one that is missing or cannot be read back is rebuilt from the
    best checkpoint of the step that made it, saying so, where that step has finished."""
    path = run_dir.model_file(name)
    why = unreadable_model(path) if path.exists() else "missing"
    if why is None:
        return path
    maker = next((step for step in plan if step.produces == name), None)
    if maker is None or not maker.directory.is_done():
        job = maker.job if maker is not None else "the job that trains it"
        raise RunDirError(f"{path} " + ("does not exist" if why == "missing" else
                                        f"cannot be read ({why})")
                          + f": run {job} with this --run-dir first")
    maker.directory.mark_published(maker.publish(executions[maker.name]))
    print(f"{path} was {why if why == 'missing' else f'unreadable ({why})'}: rebuilt from the "
          f"checkpoints of {maker.label}")
    return path


def _notes(run: RunModels, names: Sequence[str]) -> list[str]:
    """What the comparison's table cannot show: the unlabeled images a student learnt from."""
    unlabeled = run.run_dir.unlabeled_count()
    if STUDENT_DISTILLED not in names or unlabeled is None:
        return []
    return [f"{STUDENT_DISTILLED} learnt from the {run.labeled_images:,} labeled training "
            f"images and {counted(unlabeled, 'unlabeled one')} ({run.config.unlabeled_images}, "
            f"listed in {run.run_dir.unlabeled_file.name}); the other models from the labeled ones "
            "alone."]
