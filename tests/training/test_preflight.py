"""The preflight: every step of the plan checked on a real batch before the first epoch.

The faults are planted in the models the job builds (the builders are replaced by ones that add
the faulty layers to the real models); the XLA compile, the allocation and the fallback run are
real.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from helpers import write_image_folder
from keras import layers, ops

from teacher_student import cli, jobs
from teacher_student import config as cfg
from teacher_student.models.structure import Structure, attach, structure_of
from teacher_student.models.student import build_student
from teacher_student.models.teacher import build_teacher
from teacher_student.run.directory import RunDir
from teacher_student.training import preflight
from teacher_student.training.steps import distillation, student, teacher_phase

STEPS = ["phase1_warmup", "phase2_main", "phase3_finetune", "student_distilled",
         "student_scratch"]
RECORDS = ["config.yaml", "preflight.json", "skipped_files.csv", "split.csv",
           "split.csv.sha256"]
ONE_PHASE = ["phases.1.epochs=0", "phases.2.epochs=0"]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("images"))


def _settings(images, *more):
    return [f"data.source={images}", "data.batch_size=4", *more]


def _argv(command, images, run) -> list[str]:
    argv = [command, "--config", "tiny", "--run-dir", str(run)]
    for setting in _settings(images):
        argv += ["--set", setting]
    return argv


def test_preflight_alone_checks_every_step_and_leaves_no_checkpoint(images, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main([*_argv("train-teacher", images, run), "--preflight"]) == 0
    out = capsys.readouterr().out
    record = json.loads((run / "preflight.json").read_text())
    assert [step["name"] for step in record["steps"]] == STEPS
    assert not any(step["fallback"] for step in record["steps"])
    assert all(step["train_step_s"] > 0 and step["estimate_s"] > 0 for step in record["steps"])
    assert "teacher phase 3/3 'finetune': " in out and "estimate for the plan" in out
    # No checkpoint, no model: the records of the run's data and of the preflight.
    assert sorted(p.name for p in run.iterdir() if p.name != ".lock") == RECORDS

    # The run itself, in a new session (another time budget): the same config, data and
    # machine, so the recorded checks stand.
    config = cfg.load("tiny", _settings(images, "time_budget=2h"))
    with jobs.training_job(config, RunDir(run), "train-teacher") as job:
        assert job.executions["student_distilled"].policy.name == record["precision"]
    out = capsys.readouterr().out
    assert "preflight: as checked before (preflight.json: the same config, data and " \
           "machine), 5 steps" in out
    assert "teacher phase 3/3 'finetune': " in out and "preflight passed" not in out
    assert json.loads((run / "preflight.json").read_text())["finished"] == record["finished"]


def test_the_run_starts_from_the_same_weights_with_or_without_a_preflight(images, tmp_path):
    config = cfg.load("tiny", _settings(images, *ONE_PHASE, "distill.baseline=false"))
    weights = {}
    for checked in (True, False):
        with jobs.training_job(config, RunDir(tmp_path / str(checked)), "train-teacher",
                               checked) as job:
            first = job.steps[0]
            weights[checked] = first.build(job.executions[first.name], job.data).deployable \
                .get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(weights[True], weights[False]))


class DeviceHog(layers.Layer):
    """Asks for 2 TiB in the training step: a real out-of-memory on any machine."""

    def call(self, x, training=False):
        if training:
            huge = ops.tile(x[:1, :1, :1, :1], (2**14, 2**13, 2**12, 1))
            x = x + ops.cast(ops.max(huge), x.dtype)
        return x


def _with_layer_in_front(model: keras.Model, layer: layers.Layer) -> keras.Model:
    """`model` with `layer` applied to its input, the real model after it."""
    inputs = keras.Input(model.input.shape[1:], dtype=model.input.dtype, name="image")
    features = layers.Rescaling(1.0, dtype="float32", name="planted_cast")(inputs)
    return _around(model, keras.Model(inputs, model(layer(features)),
                                      name=f"planted_{model.name}"))


def _around(inner: keras.Model, outer: keras.Model) -> keras.Model:
    """`outer`, which nests `inner`, with `inner`'s trunk recorded as its own (structure.py):
    the phases freeze it as they would freeze `inner` alone."""
    recorded = structure_of(inner)
    return attach(outer, Structure(
        tuple(tuple(f"{inner.name}/{path}" for path in part) for part in recorded.trunk_parts),
        f"{inner.name}/{recorded.head_pool}"))


def _plant_teacher(monkeypatch, build) -> None:
    """`build` makes the teacher of every step: its phases and the distillation's."""
    for module in (teacher_phase, distillation):
        monkeypatch.setattr(module, "build_teacher", build)


def test_an_out_of_memory_step_fails_the_preflight_naming_the_step(images, tmp_path, capsys,
                                                                 monkeypatch):
    def hungry_teacher(config, policy):
        return _with_layer_in_front(build_teacher(config, policy), DeviceHog(name="hog"))

    _plant_teacher(monkeypatch, hungry_teacher)
    run = tmp_path / "run"
    assert cli.main([*_argv("train-teacher", images, run), "--preflight"]) == 1
    err = capsys.readouterr().err
    assert "teacher phase 1/3 'warmup', compiling and taking the first training step" in err
    assert "memory" in err and "data.batch_size" in err
    assert not (run / "teacher").exists() and not list(run.glob("*.keras"))


def _float16_bilinear_branch(policy):
    """A two-scale branch whose bilinear upsampling computes in the policy's float16, with no
    float32 island: TensorFlow's XLA cannot compile its gradient (MIXED-PRECISION-FACTS.md)."""
    dtype = policy.layer_dtype

    def apply(x):
        fine = layers.Conv2D(4, 3, padding="same", dtype=dtype, name="planted_fine")(x)
        coarse = layers.Conv2D(4, 3, strides=2, padding="same", dtype=dtype,
                               name="planted_coarse")(fine)
        up = layers.UpSampling2D(2, interpolation="bilinear", dtype=dtype,
                                 name="planted_up")(coarse)
        return layers.Add(dtype=dtype, name="planted_merge")([fine, up])
    return apply


def teacher_with_a_float16_resize(config, policy):
    teacher = build_teacher(config, policy)
    inputs = keras.Input(teacher.input.shape[1:], dtype="uint8", name="image")
    x = layers.Rescaling(1 / 255, dtype=policy.layer_dtype, name="planted_scale")(inputs)
    branch = layers.GlobalAveragePooling2D(dtype=policy.layer_dtype, name="planted_pool")(
        _float16_bilinear_branch(policy)(x))
    extra = layers.Dense(config.num_classes, dtype="float32", name="planted_logits")(branch)
    logits = layers.Add(dtype="float32", name="planted_sum")([teacher(inputs), extra])
    return _around(teacher, keras.Model(inputs, logits, name="planted_teacher"))


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="a TensorFlow XLA fault")
def test_an_xla_dtype_fault_falls_back_to_xla_off_and_the_run_completes(images, tmp_path,
                                                                      capsys, monkeypatch):
    _plant_teacher(monkeypatch, teacher_with_a_float16_resize)
    config = cfg.load("tiny", _settings(images, "precision=mixed_float16", "jit_compile=true",
                                        "distill.baseline=false", *ONE_PHASE))
    run_dir = RunDir(tmp_path / "run")

    jobs.train_teacher(config, run_dir)

    out = capsys.readouterr().out
    assert "preflight: teacher phase 1/3 'warmup' fails as configured" in out
    assert "it runs with mixed_float16, XLA off instead" in out
    checked = {s["name"]: s for s in json.loads((run_dir.path / "preflight.json").read_text())[
        "steps"]}
    assert list(checked) == ["phase1_warmup", "student_distilled"]  # phases of 0 epochs: none
    warmup = checked["phase1_warmup"]
    assert (warmup["precision"], warmup["jit_compile"]) == ("mixed_float16", False)
    assert "different precisions" in warmup["fallback"]
    # The distillation only runs the teacher forward: XLA stays on for it.
    assert checked["student_distilled"]["jit_compile"] is True
    assert run_dir.teacher_phase(1, "warmup").read_history()["epoch"].tolist() == [1]
    assert keras.saving.load_model(run_dir.model_file("teacher")).name == "planted_teacher"


def test_a_student_that_fails_everywhere_stops_the_run_before_training(images, tmp_path,
                                                                      monkeypatch):
    def broken_student(config, policy):
        return _with_layer_in_front(build_student(config, policy),
                                         layers.Reshape((-1,), name="planted_flatten"))

    monkeypatch.setattr(student, "build_student", broken_student)
    config = cfg.load("tiny", _settings(images, *ONE_PHASE))
    run_dir = RunDir(tmp_path / "run")
    with pytest.raises(preflight.PreflightFailed, match="distillation, building its models"):
        jobs.train_teacher(config, run_dir)
    assert not (run_dir.path / "teacher").exists()
