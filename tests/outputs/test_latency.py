"""CPU latency: timed in a fresh process that sees no accelerator, one thread, batch 1; each
model file measured once per machine."""

from __future__ import annotations

import json
import subprocess
import time

import keras
import pytest

from teacher_student.outputs import latency


def tiny_model(units: int = 3) -> keras.Model:
    images = keras.Input((8, 8, 1), dtype="uint8")
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(images))
    return keras.Model(images, keras.layers.Dense(units)(x))


def test_a_call_is_timed_by_its_median_and_interquartile_range():
    found = latency.time_model(lambda: time.sleep(0.002), seconds=0.05)
    assert found.calls >= latency.MIN_REPEATS
    assert 2.0 <= found.median_ms < 4.0
    assert 0.0 <= found.iqr_ms < found.median_ms


def test_the_timing_process_sees_no_accelerator_and_one_thread(monkeypatch, tmp_path):
    seen = {}

    def fake_run(command, env, **kwargs):
        seen.update(env=env, command=command)
        out = command[command.index("--out") + 1]
        with open(out, "w") as file:
            json.dump({"keras": {"m.keras": {"median_ms": 1.0, "iqr_ms": 0.1, "calls": 60}},
                       "tflite": {}}, file)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(latency.subprocess, "run", fake_run)
    found = latency.measure_on_cpu(["m.keras"])
    assert seen["env"]["CUDA_VISIBLE_DEVICES"] == "" and seen["env"]["JAX_PLATFORMS"] == "cpu"
    assert seen["env"]["TF_NUM_INTRAOP_THREADS"] == "1"
    assert "intra_op_parallelism_threads=1" in seen["env"]["XLA_FLAGS"]
    assert seen["command"][1:3] == ["-m", "teacher_student.outputs.latency"]
    assert found.keras["m.keras"] == latency.Latency(1.0, 0.1, 60)
    assert found.columns("m.keras") == {"latency_device": found.device, "latency_ms": 1.0,
                                        "latency_iqr_ms": 0.1}


def test_a_failed_timing_process_leaves_the_latency_out_and_says_why(monkeypatch, tmp_path):
    monkeypatch.setattr(latency.subprocess, "run", lambda command, **kwargs:
                        subprocess.CompletedProcess(command, 1, "", "Traceback\nOSError: no"))
    found = latency.measure_on_cpu([tmp_path / "m.keras"])
    assert found.problem == "the timing process failed (OSError: no)"
    assert found.columns(tmp_path / "m.keras") == {"latency_device": found.device}


def test_keras_and_tflite_are_timed_once_per_model_file(tmp_path, monkeypatch):
    path = tmp_path / "model.keras"
    tiny_model().save(path)
    record = tmp_path / "latency.json"
    first = latency.measure_once([path], record, tflite=True)
    assert first.problem is None
    for kind in (first.keras, first.tflite):
        assert kind[str(path)].median_ms > 0 and kind[str(path)].calls >= latency.MIN_REPEATS
    # The same file again: the record answers, nothing is started.
    monkeypatch.setattr(latency, "measure_on_cpu", lambda *args, **kwargs: pytest.fail("again"))
    again = latency.measure_once([path], record, tflite=True)
    assert again.keras == first.keras and again.tflite == first.tflite
    # Another model in the same file: measured.
    tiny_model(units=5).save(path)
    timed = []
    monkeypatch.setattr(latency, "measure_on_cpu", lambda paths, tflite: timed.append(paths)
                        or latency.CpuLatencies("cpu"))
    latency.measure_once([path], record, tflite=True)
    assert timed == [[path]]
