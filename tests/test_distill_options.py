"""How a student is taught, as the command line sets it: from an ensemble of teachers (other
runs' or files), until its validation accuracy stops improving; and what is refused, before
anything trains."""

from __future__ import annotations

import hashlib
import json
import shutil

import pandas as pd
import pytest
from helpers import optimizer_steps, write_image_folder

from teacher_student import cli

# The comparison's CPU timing is tested by the user's path (test_user_path.py): not here.
SETTINGS = ["data.batch_size=4", "phases.1.epochs=0", "phases.2.epochs=0", "distill.epochs=1",
            "measure_latency=false"]


def argv(command: str, run, images, *more: str) -> list[str]:
    sets = [part for setting in [*SETTINGS, *more] for part in ("--set", setting)]
    return [command, "--config", "tiny", "--data", str(images), *sets, "--run-dir", str(run)]


def snapshot(run) -> dict[str, str]:
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A teacher run on three classes, made once; tests distil into copies of it."""
    root = tmp_path_factory.mktemp("options")
    images = write_image_folder(root / "images")
    run = root / "run"
    assert cli.main([*argv("train-teacher", run, images), "--no-preflight"]) == 0
    return images, run


@pytest.fixture
def run(trained, tmp_path):
    _, original = trained
    copy = tmp_path / "run"
    shutil.copytree(original, copy, ignore=shutil.ignore_patterns(".lock"))
    return copy


def test_a_student_learns_from_an_ensemble_of_listed_teachers(trained, run, tmp_path, capsys):
    images, original = trained
    other = tmp_path / "other.keras"
    shutil.copy(original / "teacher.keras", other)
    teachers = f"distill.teachers=[{original}, {other}]"
    assert cli.main(argv("distill", run, images, teachers)) == 0
    out = capsys.readouterr().out
    assert "distillation: kd, 1 epoch," in out and "from 2 teachers" in out
    checked = [step["name"] for step in json.loads((run / "preflight.json").read_text())["steps"]]
    assert "student_distilled" in checked  # the preflight built the ensemble too
    assert (run / "student_distilled.keras").exists()
    # The comparison has the teachers the student learnt from, and its agreement with them.
    rows = pd.read_csv(run / "reports" / "comparison.csv").set_index("model")
    assert {"listed_teacher1", "listed_teacher2", "teacher_ensemble"} <= set(rows.index)
    assert rows.loc["teacher_ensemble", "accuracy"] >= 0
    assert rows.loc["student_distilled", "teacher_agreement"] >= 0  # with the ensemble


def test_a_new_run_learns_from_a_listed_teachers_feature_map(trained, tmp_path, capsys):
    """The teacher's file keeps which map its head pools (models/structure.py); the new run's
    plan has no teacher phases (it never trains its own), and its comparison has the listed
    teacher's row."""
    images, original = trained
    run = tmp_path / "new"
    assert cli.main([*argv("distill", run, images, "distill.method=feature",
                           f"distill.teachers=[{original}]", "distill.baseline=false"),
                     "--no-preflight"]) == 0
    out = capsys.readouterr().out
    assert "distillation: feature, 1 epoch," in out and "[1/1 distillation] epoch 1/1" in out
    history = pd.read_csv(run / "student_distilled" / "history.csv")
    assert history["distillation_loss"].iloc[0] > 0
    assert (run / "student_distilled.keras").exists() and not (run / "teacher").exists()
    rows = pd.read_csv(run / "reports" / "comparison.csv").set_index("model")
    assert rows.loc["student_distilled", "teacher_agreement"] >= 0  # with listed_teacher


def test_a_teacher_of_another_resolution_teaches_at_its_own_and_not_by_feature_maps(
        trained, tmp_path, capsys):
    """A teacher trained on the same images at 40 px grey teaches a 32 px colour student: it
    sees the student's batch resized, in the distillation and in the comparison."""
    images, _ = trained
    teacher_run, run = tmp_path / "grey40", tmp_path / "new"
    assert cli.main([*argv("train-teacher", teacher_run, images, "data.image_size=40",
                           "data.channels=1"), "--no-preflight"]) == 0
    teachers = f"distill.teachers=[{teacher_run}]"
    before = snapshot(teacher_run)
    assert cli.main([*argv("distill", run, images, "distill.method=feature", teachers),
                     "--no-preflight"]) == 2
    assert "the feature method compares feature maps of one image size" in \
        capsys.readouterr().err
    assert cli.main([*argv("distill", run, images, teachers), "--no-preflight"]) == 0
    out = capsys.readouterr().out
    assert "takes 40x40 grey images: it sees the student's 32x32 colour batch resized" in out
    assert pd.read_csv(run / "student_distilled" / "history.csv")["distillation_loss"].iloc[0] > 0
    rows = pd.read_csv(run / "reports" / "comparison.csv").set_index("model")
    assert rows.loc["student_distilled", "teacher_agreement"] >= 0  # with listed_teacher
    assert rows.loc["listed_teacher", "accuracy"] >= 0
    assert snapshot(teacher_run) == before  # a listed run is read, never written


def test_a_teacher_that_learnt_from_this_runs_test_images_is_refused(trained, tmp_path, capsys):
    """A teacher of another data.seed split the same images otherwise: some of this run's
    test images were its training images."""
    images, original = trained
    other = tmp_path / "other_seed"
    assert cli.main([*argv("train-teacher", other, images, "data.seed=7"),
                     "--no-preflight"]) == 0
    run = tmp_path / "new"
    assert cli.main(argv("distill", run, images, f"distill.teachers=[{other}]")) == 2
    err = capsys.readouterr().err
    assert f"distill.teachers.0: {other} learnt from " in err
    assert "test images" in err and not (run / "config.yaml").exists()


def test_the_feature_method_refuses_an_ensemble_naming_the_key(trained, run, capsys):
    images, original = trained
    before = snapshot(run)
    assert cli.main(argv("distill", run, images, "distill.method=feature",
                         f"distill.teachers=[{original}, {original}]")) == 2
    assert "distill.teachers: the feature method learns from one teacher's feature map; 2 " \
           "are listed" in capsys.readouterr().err
    assert snapshot(run) == before


@pytest.mark.parametrize("teachers, message", [
    ("[{missing}]", "distill.teachers.0: {missing} is neither a .keras file"),
    ("[{other_classes}]", "distill.teachers.0: {other_classes} was trained on the classes"),
])
def test_a_listed_teacher_that_does_not_fit_is_refused_naming_it(trained, run, tmp_path,
                                                                capsys, teachers, message):
    images, _ = trained
    other_images = write_image_folder(tmp_path / "four", classes=4)
    other_classes = tmp_path / "four_run"
    paths = {"missing": tmp_path / "nowhere.keras", "other_classes": other_classes}
    if "other_classes" in teachers:
        assert cli.main([*argv("train-teacher", other_classes, other_images),
                         "--no-preflight"]) == 0
    before = snapshot(run)
    assert cli.main(argv("distill", run, images,
                         f"distill.teachers={teachers.format(**paths)}")) == 2
    assert message.format(**paths) in capsys.readouterr().err
    assert snapshot(run) == before


def test_logit_standardization_with_three_classes_is_refused_before_training(tmp_path,
                                                                             capsys):
    images = write_image_folder(tmp_path / "images")
    run = tmp_path / "run"
    assert cli.main(argv("train-teacher", run, images, "distill.standardize_logits=true")) == 2
    assert "distill.standardize_logits: 3 classes are too few" in capsys.readouterr().err
    assert not (run / "config.yaml").exists()


def test_students_stop_alike_when_validation_stops_improving(trained, run, capsys):
    images, _ = trained
    # A learning rate too small to change a prediction: no epoch beats the first.
    assert cli.main([*argv("distill", run, images, "distill.epochs=10",
                           "distill.learning_rate=1.0e-12", "distill.early_stopping_patience=2"),
                     "--no-preflight"]) == 0
    out = capsys.readouterr().out
    for student in ("student_distilled", "student_scratch"):
        history = pd.read_csv(run / student / "history.csv")
        # Epochs 2-3 the plateau, 4-5 the schedule's last two: its learning rate decayed.
        assert history["epoch"].tolist() == [1, 2, 3, 4, 5], student
        assert json.loads((run / student / "done.json").read_text())["stopped_early"]
        assert f"{student}: no better validation accuracy for 2 epochs after epoch 3" in out
        assert (f"{student}: stopped early after epoch 5/10, its validation accuracy no better "
                "since epoch 1") in out
    assert json.loads((run / "status.json").read_text())["state"] == "done"


def test_unlabeled_images_are_shuffled_into_the_distillation_alone(trained, run, tmp_path,
                                                                    capsys):
    images, _ = trained
    # 12 images of their own (the same seed would repeat labeled ones), no labels read
    unlabeled = write_image_folder(tmp_path / "test_folder", per_class=4, seed=2)
    (unlabeled / "notes.txt").write_text("not an image")
    assert cli.main(argv("distill", run, images, f"distill.unlabeled={unlabeled}")) == 0
    out = capsys.readouterr().out
    assert f"unlabeled images {unlabeled}: 12 used, 1 skipped" in out
    assert f"with the unlabeled images of {unlabeled}" in out
    skipped = pd.read_csv(run / "skipped_unlabeled.csv")
    assert skipped["path"].str.endswith("notes.txt").tolist() == [True]
    assert len(pd.read_csv(run / "unlabeled.csv")) == 12
    assert "and 12 unlabeled ones" in (run / "reports" / "comparison.md").read_text()
    split = pd.read_csv(run / "split.csv")
    train = int((split["split"] == "train").sum())
    # One epoch: the distilled student steps over both, the baseline over the labeled alone,
    # as many of them (12 repeated) as there are labeled and unlabeled images: as many steps.
    assert optimizer_steps(run / "student_distilled") == (train + 12) // 4
    assert optimizer_steps(run / "student_scratch") == (train + 12) // 4


def test_unlabeled_images_of_the_labeled_set_or_none_usable_are_refused(trained, run,
                                                                       tmp_path, capsys):
    images, _ = trained
    before = snapshot(run)
    # The labeled folder itself: every file is one of the run's labeled images.
    assert cli.main(argv("distill", run, images, f"distill.unlabeled={images}")) == 2
    err = capsys.readouterr().err
    assert f"distill.unlabeled: {images}: no usable image; 36 entries skipped" in err
    assert "one of the run's labeled images" in err
    assert snapshot(run) == before


def test_a_finished_run_distils_again_as_a_variant_without_repeating_its_options(trained, run,
                                                                                 capsys):
    """Without --config, the run's own config is the base: no train-teacher option again.
    Other distill settings on trained students make a variant in its own folder, its students
    in the run's comparison; the same settings again report it."""
    def distill(*sets: str) -> int:
        return cli.main(["distill", "--run-dir", str(run), "--no-preflight",
                         *(part for setting in sets for part in ("--set", setting))])

    assert distill("distill.epochs=1", "distill.baseline=false") == 0
    assert distill("distill.temperature=2") == 0
    variant = run / "variants" / "temperature-2.0"
    out = capsys.readouterr().out
    assert f"variant 'temperature-2.0' of {run}, in {variant}" in out
    assert "temperature: 2.0" in (variant / "config.yaml").read_text()
    assert "temperature: 4.0" in (run / "config.yaml").read_text()  # the run's own, kept
    assert (variant / "student_distilled.keras").exists() and not (variant / "teacher").exists()
    rows = pd.read_csv(run / "reports" / "comparison.csv")["model"].tolist()
    assert {"teacher", "student_distilled", "student_distilled@temperature-2.0"} <= set(rows)

    assert distill("distill.temperature=2") == 0
    assert "distillation: finished earlier, skipped" in capsys.readouterr().out


def test_a_teacher_that_answers_probabilities_is_refused(trained, run, tmp_path, capsys):
    """An exported .keras ends in a softmax: read as logits, its soft targets would be flat."""
    import keras

    from teacher_student.outputs.convert import with_probabilities

    images, original = trained
    exported = tmp_path / "exported_teacher.keras"
    with_probabilities(keras.saving.load_model(original / "teacher.keras")).save(exported)
    before = snapshot(run)
    assert cli.main(argv("distill", run, images, f"distill.teachers=[{exported}]")) == 2
    assert f"distill.teachers.0: {exported} answers probabilities" in capsys.readouterr().err
    assert snapshot(run) == before


def test_a_student_larger_than_its_teacher_is_said_with_a_warning():
    from teacher_student.training.steps.distillation import _sizes

    assert _sizes(1_000, 12_300, "the teacher") == \
        "the student has 1,000 parameters, 12.3x fewer than the teacher"
    larger = _sizes(56_000, 1_000, "the teachers")
    assert larger.startswith("the student has 56,000 parameters, 56.0x more than the teachers")
    assert "warning" in larger and "0.0x" not in larger
