"""The plan's clock: time left from the current step's recent epochs, later steps at the
preflight's measurement scaled to what this machine does, and its line after Keras' own."""

from __future__ import annotations

import contextlib
import json
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from teacher_student.errors import TimeBudgetReached
from teacher_student.models.precision import PrecisionPolicy
from teacher_student.run.checkpoints import CheckpointDir
from teacher_student.training.timekeeping import Timekeeper
from teacher_student.training.trainer import fit_resumable


def plan(*epochs: int) -> list[SimpleNamespace]:
    return [SimpleNamespace(name=f"step{i}", label=f"step {i}", epochs=count)
            for i, count in enumerate(epochs)]


def test_time_left_leaves_out_the_first_epoch_which_compiles(tmp_path, capsys):
    clock = Timekeeper(plan(10), tmp_path / "status.json")
    clock.epoch_done("step0", 1, 60.0)  # compiling
    assert "about 9m left" in capsys.readouterr().out  # nothing else known yet: 9 x 60 s
    for epoch, seconds in ((2, 12.0), (3, 10.0), (4, 11.0), (5, 9.0)):
        clock.epoch_done("step0", epoch, seconds)
    # the last three epochs (10 + 11 + 9) / 3 = 10 s, five epochs left; not the mean of all
    assert clock.seconds_left(0, 5) == pytest.approx(50.0)
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["seconds_left_estimate"] == 50
    assert "| plan 50% | about 50s left" in capsys.readouterr().out


def test_after_a_first_epoch_the_preflights_later_epochs_stand_in(tmp_path):
    clock = Timekeeper(plan(4), tmp_path / "status.json")
    clock.expect("step0", 40.0, epoch_s=5.0)
    clock.epoch_done("step0", 1, 40.0)
    assert clock.seconds_left(0, 1) == pytest.approx(3 * 5.0)


def test_later_steps_take_the_preflights_share_scaled_to_this_machine(tmp_path):
    clock = Timekeeper(plan(3, 2, 4), tmp_path / "status.json")
    for name, epoch_s in (("step0", 10.0), ("step1", 4.0), ("step2", 2.0)):
        clock.expect(name, 2 * epoch_s, epoch_s)
    for epoch, seconds in ((1, 50.0), (2, 20.0)):  # this machine: twice the preflight's
        clock.epoch_done("step0", epoch, seconds)
    # ... and what each later step's first epoch adds by compiling, as the preflight measured
    assert clock.seconds_left(0, 2) == pytest.approx(1 * 20.0 + 2 * 8.0 + 4 * 4.0 + 4.0 + 2.0)
    # without a preflight, later epochs are taken to be as long as this step's
    bare = Timekeeper(plan(3, 2), tmp_path / "bare.json")
    for epoch, seconds in ((1, 50.0), (2, 20.0)):
        bare.epoch_done("step0", epoch, seconds)
    assert bare.seconds_left(0, 2) == pytest.approx(3 * 20.0)


@pytest.mark.parametrize("ending, state", [
    (None, "done"),
    (TimeBudgetReached("time budget: stopped"), "stopped for time"),
    (KeyboardInterrupt(), "interrupted"),
    (ValueError("bad batch"), "failed"),
])
def test_status_says_whether_the_job_runs_and_how_it_ended(tmp_path, ending, state):
    clock = Timekeeper(plan(3), tmp_path / "status.json")

    def status() -> dict:
        return json.loads((tmp_path / "status.json").read_text())

    with contextlib.suppress(type(ending) if ending else ()), clock.tracking():
        assert status()["state"] == "running"
        clock.epoch_done("step0", 1, 5.0)
        assert (status()["state"], status()["epoch"]) == ("running", 1)
        if ending is not None:
            raise ending
    assert (status()["state"], status()["epoch"]) == (state, 1)  # where it was, kept
    assert ("error" in status()) == (state == "failed")


class Batches(keras.utils.PyDataset):
    def __init__(self):
        super().__init__()
        self.pixels = np.random.default_rng(0).integers(0, 256, (8, 4, 4, 1), dtype=np.uint8)

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int):
        return self.pixels, np.arange(8) % 2


def test_the_progress_line_follows_keras_line_of_its_epoch(tmp_path, capfd):
    inputs = keras.Input((4, 4, 1), dtype="uint8")
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(
        keras.layers.Rescaling(1 / 255)(inputs))))
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    steps = plan(3)
    clock = Timekeeper(steps, tmp_path / "status.json")
    fit_resumable(model, Batches(), Batches(), epochs=3,
                  directory=CheckpointDir(tmp_path / "step0"),
                  policy=PrecisionPolicy("float32"), deployable=model, verbose=2,
                  clock=clock.watch("step0"))
    lines = [line for line in capfd.readouterr().out.splitlines() if line.strip()]
    progress = [i for i, line in enumerate(lines) if line.startswith("[1/1 step 0] epoch")]
    assert len(progress) == 3
    for epoch, at in enumerate(progress, start=1):
        assert "val_loss" in lines[at - 1]  # Keras' summary of the epoch, just before
        assert lines[at - 2] == f"Epoch {epoch}/3"
