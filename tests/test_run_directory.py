"""The run directory: where every file of a run goes, written whole or not at all."""

from __future__ import annotations

import json

import pytest

from teacher_student.errors import RunDirError
from teacher_student.run.checkpoints import CheckpointDir
from teacher_student.run.directory import RunDir


def test_history_round_trips_with_the_epoch_first_and_leaves_no_temporary_file(tmp_path):
    phase = CheckpointDir(tmp_path / "phase")
    rows = [{"epoch": 1, "loss": 1.5, "accuracy": 0.25}, {"epoch": 2, "loss": 0.75}]
    phase.write_history(rows)
    frame = phase.read_history()
    assert list(frame.columns) == ["epoch", "accuracy", "loss"]
    assert frame["epoch"].tolist() == [1, 2]
    assert frame["loss"].tolist() == [1.5, 0.75]
    assert frame["accuracy"].isna().tolist() == [False, True]  # a metric one epoch lacks
    assert [p.name for p in phase.path.iterdir()] == ["history.csv"]


def test_a_phase_without_history_reads_as_empty(tmp_path):
    assert CheckpointDir(tmp_path / "never").read_history().empty


def test_resume_points_keep_the_newest_and_appear_whole(tmp_path):
    phase = CheckpointDir(tmp_path / "phase")

    def fill(folder):
        (folder / "state").write_text("weights")

    for epoch in (1, 2, 3):
        phase.publish_resume_point(epoch, fill, keep=2)
    assert [p.name for p in phase.resume_points()] == ["epoch-0002", "epoch-0003"]
    assert (phase.latest_resume_point() / "state").read_text() == "weights"

    def fail(folder):
        (folder / "state").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        phase.publish_resume_point(4, fail)
    assert phase.latest_resume_point().name == "epoch-0003"  # no half-written epoch-0004
    assert not [p for p in phase.resume.iterdir() if p.name.startswith(".tmp-")]


def test_paths_of_a_run(tmp_path):
    run = RunDir(tmp_path)
    assert run.teacher_phase(2, "main").path == tmp_path / "teacher" / "phase2_main"
    assert run.model_file("student_distilled") == tmp_path / "student_distilled.keras"
    assert run.for_worker(1).path == tmp_path / "workers" / "worker-1"
    with pytest.raises(RunDirError, match="teacher.keras does not exist: run train-teacher"):
        run.require_model("teacher", "run train-teacher first")


def test_split_file_round_trips_with_class_names_in_label_order(tmp_path):
    from teacher_student.data.splits import Split

    run = RunDir(tmp_path)
    splits = {"train": Split(("a.png", "b.png"), (1, 0)), "val": Split(("c.png",), (0,)),
              "test": Split(("d.png",), (1,))}
    run.write_split(splits, ("cat", "dog"))
    split = run.read_split()
    assert list(split.columns) == ["path", "label", "class_name", "split"]
    assert split["split"].tolist() == ["train", "train", "val", "test"]
    assert run.class_names() == ["cat", "dog"]


def _resume_point(phase: CheckpointDir, epoch: int) -> None:
    import h5py
    import numpy as np

    def fill(folder):
        with h5py.File(folder / "state.weights.h5", "w") as state:
            state["weights"] = np.arange(20000, dtype="float32")
        (folder / "progress.json").write_text(json.dumps({"epochs_done": epoch}))

    phase.publish_resume_point(epoch, fill, keep=2)


def _truncate(path) -> None:
    content = path.read_bytes()
    path.write_bytes(content[:len(content) // 2])


def _save_tiny_model(path) -> None:
    import keras

    path.parent.mkdir(parents=True, exist_ok=True)
    inputs = keras.Input((4,))
    keras.Model(inputs, keras.layers.Dense(2)(inputs)).save(path)


def test_an_unreadable_newest_resume_point_is_set_aside_and_the_one_before_used(tmp_path):
    phase = CheckpointDir(tmp_path / "phase")
    for epoch in (1, 2):
        _resume_point(phase, epoch)
    _truncate(phase.resume / "epoch-0002" / "state.weights.h5")
    notes = phase.recover()
    assert len(notes) == 1 and "epoch-0002 cannot be read" in notes[0]
    assert phase.latest_resume_point().name == "epoch-0001"
    assert (phase.path / "set_aside" / "epoch-0002" / "state.weights.h5").exists()
    assert phase.recover() == []  # what is left reads back


def test_an_unreadable_last_keras_sets_its_whole_epoch_aside(tmp_path):
    phase = CheckpointDir(tmp_path / "phase")
    for epoch in (1, 2):
        _resume_point(phase, epoch)
    _save_tiny_model(phase.last_model)
    _truncate(phase.last_model)
    notes = phase.recover()
    assert [note.split(" cannot be read")[0] for note in notes] == [
        str(phase.last_model), str(phase.resume / "epoch-0002")]
    assert phase.latest_resume_point().name == "epoch-0001"
    assert not phase.last_model.exists()


def test_a_finished_phase_with_a_damaged_best_model_takes_its_last_one(tmp_path):
    phase = CheckpointDir(tmp_path / "phase")
    _save_tiny_model(phase.last_model)
    _save_tiny_model(phase.best_model)
    phase.mark_done({"epochs": 1})
    damaged = bytearray(phase.best_model.read_bytes())
    damaged[len(damaged) // 3] ^= 0xFF  # one flipped byte inside a member: its checksum fails
    phase.best_model.write_bytes(bytes(damaged))
    notes = phase.recover()
    assert "best.keras cannot be read" in notes[0]
    assert "stands in" in notes[1]
    assert phase.best_model.read_bytes() == phase.last_model.read_bytes()
    assert (phase.path / "set_aside" / "best.keras").exists()
