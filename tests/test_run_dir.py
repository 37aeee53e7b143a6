"""The run directory: where every file of a run goes, written whole or not at all."""

from __future__ import annotations

import pytest

from teacher_student.errors import RunDirError
from teacher_student.run_dir import CheckpointDir, RunDir


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
