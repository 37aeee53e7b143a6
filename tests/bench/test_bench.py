"""Smoke tests of the benchmarks at tiny sizes: every path runs and reports sane figures.

Timings are never asserted (they belong in BENCHMARKS.md); only structure and sanity are:
keys present, rates positive, losses finite, TFLite agreeing with Keras.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from teacher_student import atomic, cli
from teacher_student.bench import commands, common, gpu_report, pipeline
from teacher_student.bench import cpu as bench_cpu
from teacher_student.bench import gpu as bench_gpu

ROOT = Path(__file__).resolve().parents[1]
TINY_TRAIN = bench_gpu.TrainBench(config="tiny", image_size=32, num_classes=3, batch_size=4,
                                  warmup=1, steps=2, windows=2, keras_fit=())
TINY_CPU = bench_cpu.CpuBench(config="tiny", image_size=32, num_classes=3, images=8, classes=2,
                              batch_size=4, epochs=2, repeats=2, latency_batches=(1, 2),
                              latency_images=2, train_batch_size=2, train_steps=1)
JAX_ENV = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}


def test_cli_has_both_benchmarks():
    parser = cli.build_parser()
    train = parser.parse_args(["bench", "train", "--models", "distill", "--precisions",
                               "float32-highest", "--keras-fit"])
    assert train.run is commands.bench_train and train.keras_fit == []
    assert parser.parse_args(["bench", "cpu"]).run is commands.bench_cpu


def _check_step(result: dict) -> None:
    for key in ("device_fed_images_per_s", "host_fed_images_per_s", "prefetched_images_per_s",
                "step_ms", "hlo_flops_per_step", "compile_s"):
        assert result[key] > 0, (key, result)
    assert result["finite"]


def test_jax_step_imports_no_tensorflow_and_runs_full_float32():
    """The GPU machine has no TensorFlow: the benchmark's JAX path must not import it."""
    pytest.importorskip("jax")
    spec = json.dumps(dataclasses.asdict(TINY_TRAIN))
    script = textwrap.dedent(f"""
        import json, sys
        from teacher_student.bench import gpu as bench_gpu
        spec = bench_gpu.TrainBench(**{{**json.loads({spec!r}), "keras_fit": ("student",)}})
        result = bench_gpu.measure(spec, "student", "float32-highest")
        assert "tensorflow" not in sys.modules, "the GPU benchmark imported tensorflow"
        print(json.dumps(result))
    """)
    done = subprocess.run([sys.executable, "-c", script], env=JAX_ENV, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    _check_step(result)
    assert result["full_float32_in_hlo"]  # the precision reached the convolutions
    assert result["keras_fit_images_per_s"] > 0


def test_the_trainer_fit_data_parallel_over_two_devices():
    """`bench train --devices 2`: the trainer's fit under DataParallel, as a job on two GPUs
    runs it (two CPU devices here), counting the global batch."""
    pytest.importorskip("jax")
    spec = json.dumps({**dataclasses.asdict(TINY_TRAIN), "keras_fit": ["student"],
                       "devices": 2})
    script = textwrap.dedent(f"""
        import json
        import keras
        from teacher_student.bench import gpu as bench_gpu
        spec = bench_gpu.TrainBench(**json.loads({spec!r}))
        result = bench_gpu.measure(spec, "student", "float32")
        result["distribution"] = type(keras.distribution.distribution()).__name__
        print(json.dumps(result))
    """)
    env = {**JAX_ENV, "XLA_FLAGS": " ".join(filter(None, [
        JAX_ENV.get("XLA_FLAGS"), "--xla_force_host_platform_device_count=2"]))}
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert (result["devices"], result["distribution"]) == (2, "DataParallel")
    assert result["trainer_images_per_s"] > 0
    assert "step_ms" not in result and "keras_fit_images_per_s" not in result  # one device's


def test_train_command_measures_distillation_in_a_subprocess(tmp_path):
    pytest.importorskip("jax")
    out = tmp_path / "train.json"
    command = [sys.executable, "-m", "teacher_student", "bench", "train", "--config", "tiny",
               "--image-size", "32", "--num-classes", "3", "--batch-size", "4", "--warmup", "1",
               "--steps", "2", "--windows", "2", "--models", "distill", "--precisions",
               "mixed_float16", "--keras-fit", "--json", str(out)]
    done = subprocess.run(command, env=JAX_ENV, cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (result,) = json.loads(out.read_text())["results"]
    _check_step(result)
    assert result["teacher_forward_ms"] > 0 and result["teacher_forward_hlo_flops"] > 0
    assert result["hlo_flops_per_step"] > result["teacher_forward_hlo_flops"]
    assert "| distill | mixed_float16 |" in done.stdout  # the table, padded to its widest cell


def test_keras_fit_path_on_this_backend():
    """What other backends (TensorFlow with a GPU) measure: Keras' own fit."""
    spec = dataclasses.replace(TINY_TRAIN, keras_fit=("student",))
    result = bench_gpu.measure(spec, "student", "mixed_float16")
    assert result["keras_fit_images_per_s"] > 0  # the model alone, on arrays
    assert result["trainer_images_per_s"] > 0  # a Trainee on Batches, augmenting in the step
    assert result["parameters"] > 0
    row = gpu_report.summarize([result])[0]
    assert row["images_per_s"] == result["trainer_images_per_s"]


def test_cpu_benchmarks_report_every_table(tmp_path):
    pipeline.write_jpegs(tmp_path, TINY_CPU.images, TINY_CPU.classes, TINY_CPU.source_size)
    assert len(list(tmp_path.rglob("*.jpg"))) == TINY_CPU.images
    report = {"environment": common.environment(), "spec": dataclasses.asdict(TINY_CPU),
              "pipeline": pipeline.pipeline_rows(tmp_path, TINY_CPU)}
    assert {r["pipeline"] for r in report["pipeline"]} >= {
        pipeline.OURS_LIGHT, pipeline.OURS_PLAIN, pipeline.KERAS_PIPELINE, pipeline.KERAS_LIGHT}
    assert all(r["images_per_s"] > 0 and r["images"] > 0 for r in report["pipeline"])

    models = bench_cpu._models(TINY_CPU)
    report["latency"] = [row for name, model in models.items()
                         for row in bench_cpu.latency_rows(name, model, TINY_CPU)]
    assert len(report["latency"]) == len(models) * 5 * len(TINY_CPU.latency_batches)
    for row in report["latency"]:
        assert row["ms_per_image"] > 0
        assert row["max_abs_diff"] < 1e-3, row  # TFLite computes what Keras computes

    report["training"] = bench_cpu.train_rows("student", TINY_CPU)
    assert [r["xla"] for r in report["training"]] == [True, False]
    assert all(r["ms_per_step"] > 0 for r in report["training"])
    text = bench_cpu.format_report(report)
    assert "teacher / student" in text and "no XLA / XLA" in text


def _report(results: list[dict], **spec) -> dict:
    spec = {**dataclasses.asdict(TINY_TRAIN), **spec}
    return {"environment": common.environment(detect_device=False), "spec": spec,
            "results": results}


def test_show_merges_runs_made_in_separate_calls(tmp_path, capsys):
    student = {"model": "student", "precision": "float32", "step_ms": 2.0,
               "device_fed_images_per_s": 100.0}
    distill = {"model": "distill", "precision": "float32", "step_ms": 5.0,
               "teacher_forward_ms": 2.5, "device_fed_images_per_s": 40.0}
    failed = {"model": "student", "precision": "float32", "error": "time budget spent"}
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    atomic.write_json(paths[0], _report([student]))
    atomic.write_json(paths[1], _report([distill, failed]))

    assert cli.main(["bench", "show", *map(str, paths)]) == 0
    text = capsys.readouterr().out
    # The distillation row is compared with the student step of the other run: 5 / (2 + 2.5).
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith("|")]
    assert ["float32", "5.0", "2.5", "4.5", "1.11"] in [[row[0], *row[2:]] for row in rows]
    assert "time budget spent" not in text  # a failure does not replace a measurement


def test_show_gives_the_scaling_of_two_devices_against_one(tmp_path, capsys):
    one = {"model": "teacher", "precision": "mixed_float16", "devices": 1,
           "trainer_images_per_s": 1000.0}
    two = {**one, "devices": 2, "trainer_images_per_s": 1900.0}
    paths = [tmp_path / "one.json", tmp_path / "two.json"]
    atomic.write_json(paths[0], _report([one]))
    atomic.write_json(paths[1], _report([two]))

    assert cli.main(["bench", "show", *map(str, paths)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|"))))
            for line in lines[2:]]
    assert [(row["devices"], row["img/s trainer fit"], row["x one device"]) for row in rows] == \
        [("1", "1000", "-"), ("2", "1900", "1.90")]


def test_show_sets_ours_beside_the_pytorch_peer(tmp_path, capsys):
    ours = {"model": "teacher", "precision": "mixed_float16", "step_ms": 1.0,
            "device_fed_images_per_s": 300.0, "compile_s": 20.0}
    peer = {"model": "teacher", "precision": "mixed_float16", "backend": "pytorch",
            "step_ms": 2.0, "device_fed_images_per_s": 100.0, "first_step_s": 50.0,
            "finite": True}
    eager = {**peer, "backend": "pytorch eager", "device_fed_images_per_s": 150.0,
             "first_step_s": 4.0}
    paths = [tmp_path / "ours.json", tmp_path / "peer.json", tmp_path / "peer-eager.json"]
    report = _report([ours])
    report["environment"]["backend"] = "jax"
    atomic.write_json(paths[0], report)
    atomic.write_json(paths[1], _report([peer]))
    atomic.write_json(paths[2], _report([eager]))
    assert cli.main(["bench", "show", *map(str, paths)]) == 0
    rows = [[cell.strip() for cell in line.strip("|").split("|")]
            for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    # Every row kept (the same model and precision run three ways), then compared.
    assert [row[:3] for row in rows if row[0] == "teacher"][:3] == [
        ["teacher", "mixed_float16", "jax"], ["teacher", "mixed_float16", "pytorch"],
        ["teacher", "mixed_float16", "pytorch eager"]]
    compared = [row[:8] for row in rows]
    assert ["teacher", "mixed_float16", "pytorch", "300", "100", "3.00", "20", "50"] in compared
    assert ["teacher", "mixed_float16", "pytorch eager", "300", "150", "2.00", "20", "4"] \
        in compared


def test_show_refuses_runs_of_another_batch_size(tmp_path, capsys):
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    atomic.write_json(paths[0], _report([]))
    atomic.write_json(paths[1], _report([], batch_size=TINY_TRAIN.batch_size * 2))
    assert cli.main(["bench", "show", *map(str, paths)]) == 2
    assert "batch_size differs" in capsys.readouterr().err


def _rows_of(text: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith("|")][2:]


def test_compare_pairs_runs_in_order_and_gives_each_ratio_its_95_percent_interval(tmp_path,
                                                                                 capsys):
    """The teacher gains 5-7% in every pair: faster. The student's ratios straddle 1: no change.
    The pairs are taken in order: the drift from run to run falls on both sides alike."""
    teacher = [(1000.0, 1050.0), (900.0, 960.0), (1100.0, 1170.0)]
    student = [(500.0, 540.0), (520.0, 500.0), (510.0, 515.0)]
    paths = {"before": [], "after": []}
    for i, ((t_old, t_new), (s_old, s_new)) in enumerate(zip(teacher, student)):
        for side, t, s in (("before", t_old, s_old), ("after", t_new, s_new)):
            path = tmp_path / f"{side}-{i}.json"
            atomic.write_json(path, _report([
                {"model": "teacher", "precision": "mixed_float16", "device_fed_images_per_s": t},
                {"model": "student", "precision": "mixed_float16", "device_fed_images_per_s": s,
                 "trainer_images_per_s": s / 2}]))
            paths[side].append(str(path))

    assert cli.main(["bench", "compare", "--before", *paths["before"],
                     "--after", *paths["after"]]) == 0
    rows = {(row[0], row[4]): row for row in _rows_of(capsys.readouterr().out)}
    logs = np.log([new / old for old, new in teacher])
    half = 4.303 * logs.std(ddof=1) / np.sqrt(3)  # t(0.975, 2 degrees of freedom)
    expected = f"{np.exp(logs.mean()):.3f} [{np.exp(logs.mean() - half):.3f}, " \
               f"{np.exp(logs.mean() + half):.3f}]"
    assert rows["teacher", "on device"][5:] == ["3", "1,000", "1,060", expected, "faster"]
    assert rows["student", "on device"][-1] == rows["student", "trainer fit"][-1] == "no change"
    assert ("teacher", "trainer fit") not in rows  # measured on neither side


def test_compare_refuses_unpaired_runs_and_files_that_are_not_runs(tmp_path, capsys):
    run, other = tmp_path / "run.json", tmp_path / "other.json"
    atomic.write_json(run, _report([{"model": "teacher", "precision": "float32",
                                     "device_fed_images_per_s": 10.0}]))
    atomic.write_json(other, {"rows": []})
    assert cli.main(["bench", "compare", "--before", str(run), str(run),
                     "--after", str(run)]) == 2
    assert "2 before and 1 after" in capsys.readouterr().err
    assert cli.main(["bench", "compare", "--before", str(run), "--after", str(other)]) == 2
    assert f"{other}: not a `bench train --json` file" in capsys.readouterr().err


def test_distill_bench_trains_one_teacher_per_seed_and_compares_with_the_matching_baseline(
        tmp_path):
    from helpers import write_image_folder

    from teacher_student.bench import distill

    images = write_image_folder(tmp_path / "images")
    settings = ["data.batch_size=4", "data.cache=disk", "phases.1.epochs=0",
                "phases.2.epochs=0", "distill.epochs=1"]
    variants = ["scratch+cutmix", "kd+cutmix"]
    frame = distill.run(str(images), [0], variants, tmp_path / "out", "tiny", settings)
    assert sorted(frame["model"]) == sorted(["teacher", *variants])
    assert frame["accuracy"].between(0, 1).all()
    seed = tmp_path / "out" / "seed0"
    for variant in variants:  # the one teacher and its decoded images, not made again
        assert (seed / variant / "teacher.keras").read_bytes() == \
            (seed / "teacher" / "teacher.keras").read_bytes()
        assert not (seed / variant / "teacher").exists()
        assert (seed / variant / "cache").resolve() == (seed / "teacher" / "cache").resolve()
    # The baseline alone, and the distillation alone: each compared with the other's run.
    assert not (seed / "scratch+cutmix" / "student_distilled.keras").exists()
    assert not (seed / "kd+cutmix" / "student_scratch.keras").exists()
    assert "mix: cutmix" in (seed / "kd+cutmix" / "config.yaml").read_text()
    table = (tmp_path / "out" / "distillation.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in table.splitlines()[2:]}
    assert set(rows) == {"teacher", *variants} and "gap closed" in table
    expected = frame.set_index("model")["accuracy"]
    gain = 100 * (expected["kd+cutmix"] - expected["scratch+cutmix"])
    assert f"{gain:+.2f}" in rows["kd+cutmix"]  # compared with the baseline of its mixing

    again = distill.run(str(images), [0], variants, tmp_path / "out", "tiny", settings)
    assert again.sort_values("model").reset_index(drop=True).equals(
        frame.sort_values("model").reset_index(drop=True))  # finished runs are read back


@pytest.mark.slow  # 30 s: two teachers; test_distill_options covers a teacher of another size
def test_a_teacher_at_its_own_resolution_teaches_the_students_batch_resized(tmp_path, capsys):
    """bench distill --teacher-size 24 with kd-resized: the seed's second teacher learns at
    24 px on the seed's split, and the 32 px student lists it and is paired with kd from the
    seed's 32 px teacher."""
    import keras
    from helpers import write_image_folder

    from teacher_student.bench import distill
    from teacher_student.config import ConfigError

    images = write_image_folder(tmp_path / "images")
    settings = ["data.batch_size=4", "phases.1.epochs=0", "phases.2.epochs=0",
                "distill.epochs=1"]
    with pytest.raises(ConfigError, match="--teacher-size PX"):
        distill.run(str(images), [0], ["kd-resized"], tmp_path / "out", "tiny", settings)

    frame = distill.run(str(images), [0], ["kd", "kd-resized"], tmp_path / "out", "tiny",
                        settings, teacher_size=24)

    assert sorted(frame["model"]) == ["kd", "kd-resized", "teacher", "teacher-24px"]
    assert "takes 24x24 colour images: it sees the student's 32x32 colour batch resized" \
        in capsys.readouterr().out
    seed = tmp_path / "out" / "seed0"
    sized = keras.saving.load_model(seed / "teacher-24px" / "teacher.keras")
    assert tuple(sized.input_shape[1:]) == (24, 24, 3)
    listed = (seed / "kd-resized" / "config.yaml").read_text()
    assert str((seed / "teacher-24px").resolve()) in listed
    compared = pd.read_csv(seed / "kd-resized" / "reports" / "comparison.csv")
    assert "listed_teacher" in set(compared["model"])
    table = (tmp_path / "out" / "distillation.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in table.splitlines()[2:]}
    expected = frame.set_index("model")["accuracy"]
    gain = 100 * (expected["kd-resized"] - expected["kd"])
    assert "gain over the same method from the seed's teacher" in table
    assert f"{gain:+.2f}" in rows["kd-resized"]


@pytest.mark.slow  # 80 s: two teachers, two students, a subprocess; test_distill_options
# covers an ensemble teaching, the frontier plot test below the table's figure
def test_the_frontier_of_students_taught_by_an_ensemble(tmp_path, capsys):
    """bench distill with two teachers per seed, then bench frontier."""
    from helpers import write_image_folder

    images = write_image_folder(tmp_path / "images")
    out = tmp_path / "out"
    sets = [part for setting in ["data.batch_size=4", "phases.1.epochs=0", "phases.2.epochs=0",
                                 "distill.epochs=1"] for part in ("--set", setting)]
    assert cli.main(["bench", "distill", "--data", str(images), "--seeds", "0", "--config",
                     "tiny", *sets, "--out", str(out), "--students", "2",
                     "--teachers", "2", "--variants", "scratch", "kd-ensemble"]) == 0
    seed = out / "seed0"
    split = (seed / "teacher" / "split.csv").read_text()
    assert (seed / "teacher2" / "split.csv").read_text() == split  # the same split
    assert (seed / "teacher2" / "teacher.keras").read_bytes() != \
        (seed / "teacher" / "teacher.keras").read_bytes()  # other initial weights
    assert "teacher2" in (seed / "kd-ensemble@w2" / "config.yaml").read_text()
    assert "width_multiplier: 2.0" in (seed / "scratch@w2" / "config.yaml").read_text()
    capsys.readouterr()

    # As a user runs it: a fresh process, which must find our layers to load the models.
    done = subprocess.run([sys.executable, "-m", "teacher_student", "bench", "frontier", "--out",
                           str(out)], cwd=ROOT.parent, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    frontier = pd.read_csv(out / "frontier.csv").set_index("model")
    assert list(frontier.index) == ["teacher", "w2: kd-ensemble"]
    assert frontier.loc["w2: kd-ensemble", "params"] < frontier.loc["teacher", "params"]
    assert (frontier["latency_ms"] > 0).all() and (frontier["iqr_ms"] >= 0).all()
    assert frontier.loc["teacher", "teacher"] > 0  # the teacher's accuracy, in its own column
    assert pd.isna(frontier.loc["teacher", "scratch"])
    assert pd.isna(frontier.loc["w2: kd-ensemble", "teacher"])
    assert (out / "frontier.png").read_bytes()[:4] == b"\x89PNG"
    assert "x fewer params" in done.stdout and "teacher %" in done.stdout


def test_the_frontier_plot_shows_every_point_and_the_teachers_star_inside(tmp_path,
                                                                          monkeypatch):
    """A tiny run's frontier: the teacher the slowest and least accurate (its star in the
    corner where the legend was), two methods and the baseline at the same point."""
    from helpers import figures_saved

    from teacher_student.bench import frontier
    from teacher_student.outputs import plots

    figures = figures_saved(monkeypatch, plots)
    student = lambda width, params, latency: [  # noqa: E731
        {"model": f"{width}: {method}", "student": width, "method": method, "params": params,
         "latency_ms": latency, "scratch": 40.0, "distilled": 40.0} for method in ("dkd", "kd")]
    table = pd.DataFrame([{"model": "teacher", "params": 16859, "latency_ms": 0.208,
                           "teacher": 33.3}, *student("w1", 795, 0.031),
                          *student("w2", 1971, 0.035)])
    frontier.plot(table, tmp_path / "frontier.png")
    (axis,) = figures[0].axes
    legend = axis.get_legend()
    assert [text.get_text() for text in legend.get_texts()] == [
        "teacher (16,859 params)", "w1 (795 params)", "w2 (1,971 params)", "from scratch",
        "distilled: dkd", "distilled: kd"]
    inside, legend_box = axis.get_window_extent(), legend.get_window_extent()
    scale = figures[0].dpi / 72
    at_point: dict = {}
    for points in axis.collections:
        (offset,) = points.get_offsets()
        x, y = axis.transData.transform(offset)
        radius = np.sqrt(points.get_sizes()[0]) / 2 * scale
        assert inside.x0 <= x - radius and x + radius <= inside.x1, offset
        assert inside.y0 <= y - radius and y + radius <= inside.y1, offset
        assert not (legend_box.x0 < x < legend_box.x1 and legend_box.y0 < y < legend_box.y1)
        at_point.setdefault(tuple(offset), []).append(points)
    assert (0.208, 33.3) in at_point  # the teacher's star, at its own accuracy
    for offset, drawn in at_point.items():
        if offset[0] != 0.208:  # the baseline's bar and two hollow rings of other sizes
            assert len(drawn) == 3
            assert len({points.get_sizes()[0] for points in drawn}) == 3
            assert all(len(points.get_facecolor()) == 0 for points in drawn[1:])  # hollow


def test_distill_bench_with_a_share_of_unlabeled_images(tmp_path):
    from helpers import optimizer_steps

    from teacher_student.bench import distill

    rng = np.random.default_rng(0)
    labels = np.repeat(["a", "b", "c"], 12)
    images = rng.integers(0, 60, size=(36, 20, 20), dtype=np.uint8)
    for index, label in enumerate(labels):  # a bright band whose place marks the class
        band = "abc".index(label) * 6
        images[index, band:band + 6] += 150
    data = tmp_path / "labeled.npz"
    np.savez(data, images=images, labels=labels)
    settings = ["data.batch_size=4", "phases.1.epochs=0", "phases.2.epochs=0",
                "distill.epochs=1"]

    frame = distill.run(str(data), [0], ["scratch", "kd"], tmp_path / "out", "tiny", settings,
                        unlabeled=0.5)

    assert sorted(frame["model"]) == ["kd", "scratch", "teacher"]
    seed = tmp_path / "out" / "seed0"
    labeled = {name: len(list((seed / "data" / "labeled" / name).rglob("*.png")))
               for name in ("train", "val", "test")}
    stripped = len(np.load(seed / "data" / "unlabeled.npz")["images"])
    assert labeled == {"train": 12, "val": 6, "test": 6} and stripped == 12
    split = pd.read_csv(seed / "teacher" / "split.csv")  # the folder's own split, kept
    assert split["split"].value_counts().to_dict() == labeled
    assert len(pd.read_csv(seed / "kd" / "unlabeled.csv")) == stripped
    # The baseline learns from the labels alone, in as many optimizer steps: its 12 labeled
    # images twice an epoch, as many as the 12 labeled and 12 unlabeled ones of the kd run.
    steps = {name: optimizer_steps(seed / name / folder) for name, folder in
             (("kd", "student_distilled"), ("scratch", "student_scratch"))}
    assert steps["kd"] == steps["scratch"] == 24 // 4


@pytest.mark.slow  # 70 s: three teachers; test_folds covers a run's fold teachers
def test_a_student_of_fold_teachers_is_compared_with_one_of_one_teacher(tmp_path):
    """bench distill --folds 2 with kd-folds: the seed's fold teachers share its test split."""
    from helpers import write_image_folder

    from teacher_student.bench import distill

    images = write_image_folder(tmp_path / "images")
    settings = ["data.batch_size=4", "phases.1.epochs=0", "phases.2.epochs=0",
                "distill.epochs=1"]
    frame = distill.run(str(images), [0], ["kd", "kd-folds"], tmp_path / "out", "tiny",
                        settings, folds=2)
    assert sorted(frame["model"]) == sorted(["teacher", "teacher-folds",
                                             "teacher-folds out of fold", "kd", "kd-folds"])
    seed = tmp_path / "out" / "seed0"
    assert (seed / "teacher-folds" / "split.csv").read_text() == \
        (seed / "teacher" / "split.csv").read_text()
    for fold in ("teacher_fold1", "teacher_fold2"):  # taught by the folds, not trained again
        assert (seed / "kd-folds" / f"{fold}.keras").read_bytes() == \
            (seed / "teacher-folds" / f"{fold}.keras").read_bytes()
    assert not (seed / "kd-folds" / "teacher").exists()
    table = (tmp_path / "out" / "distillation.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in table.splitlines()[2:]}
    expected = frame.set_index("model")["accuracy"]
    over_one = 100 * (expected["kd-folds"] - expected["kd"])
    assert "gain over the same method from the seed's teacher" in table
    assert rows["kd-folds"].rstrip(" |").endswith(
        f"{over_one:+.2f}")


def test_the_table_pairs_gains_by_seed_with_their_95_percent_interval():
    from teacher_student.bench.distill_results import format_table

    accuracy = {"teacher": [0.91, 0.90, 0.92], "teacher-folds": [0.92, 0.91, 0.93],
                "scratch": [0.85, 0.86, 0.84], "kd": [0.86, 0.88, 0.85],
                "kd-folds": [0.87, 0.88, 0.87]}
    frame = pd.DataFrame([{"seed": seed, "model": model, "accuracy": value}
                          for model, values in accuracy.items()
                          for seed, value in enumerate(values)])
    rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
            for line in format_table(frame).splitlines()[2:]}
    # kd - scratch: +1, +2, +1 points; mean 4/3, sd 0.577, t(0.975, 2) = 4.303: +-1.43
    assert rows["kd"][3] == "+1.33 [-0.10, +2.77]"
    assert rows["kd"][4] == "22%"  # 1.33 of the teacher's 6 points over scratch
    # kd-folds - kd: +1, 0, +2 points: mean +1, sd 1, half-width 2.48
    assert rows["kd-folds"][5] == "+1.00 [-1.48, +3.48]"
    assert rows["kd"][5] == "-" and rows["teacher-folds"][3] == "-"


def test_each_recipe_arm_changes_its_settings_in_the_phases_they_are_for():
    from teacher_student.bench.recipe import arm_overrides
    from teacher_student.config import Config

    phases = Config().phases  # warmup 3, main 12, finetune 5
    assert arm_overrides("today", phases) == []
    assert arm_overrides("ema", phases) == ["phases.1.ema_momentum=0.995",
                                            "phases.2.ema_momentum=0.995"]
    longer = arm_overrides("all-3x", phases)
    assert {"data.flip=true", "phases.0.label_smoothing=0.1", "phases.2.erasing=0.5",
            "phases.1.mix=cutmix"} <= set(longer) and "phases.0.mix=cutmix" not in longer
    assert longer[-3:] == ["phases.0.epochs=9", "phases.1.epochs=36", "phases.2.epochs=15"]
    but_cutmix = arm_overrides("all-but-cutmix-3x", phases)
    assert set(but_cutmix) == set(longer) - {"phases.1.mix=cutmix", "phases.2.mix=cutmix"}
    assert set(arm_overrides("all-but-flip", phases)) == \
        set(arm_overrides("all", phases)) - {"data.flip=true"}


@pytest.mark.slow  # 60 s: two teachers
def test_the_recipe_bench_pairs_each_arm_with_todays_and_tests_mirrors_with_tta(tmp_path,
                                                                                capsys):
    from helpers import write_image_folder

    images = write_image_folder(tmp_path / "images")
    assert cli.main(["bench", "recipe", "--data", str(images), "--config", "tiny", "--seeds",
                     "0", "--arms", "today", "flip", "--out", str(tmp_path / "out"),
                     "--set", "data.batch_size=4", "--set", "phases.1.epochs=0",
                     "--set", "phases.2.epochs=0"]) == 0
    frame = pd.read_csv(tmp_path / "out" / "recipe.csv").set_index("model")
    assert set(frame.index) == {"today", "flip", "flip+tta"}
    assert frame.loc["flip", "seconds"] > 0
    table = capsys.readouterr().out
    gain = 100 * (frame.loc["flip", "accuracy"] - frame.loc["today", "accuracy"])
    assert f"| {gain:+.2f} " in table.replace("  ", " ")
    assert (tmp_path / "out" / "seed0" / "flip" / "reports" / "teacher+tta_confusion.png"
            ).exists()


def test_the_table_tests_each_gain_over_the_test_images_with_mcnemar(tmp_path):
    """Pooled over seeds: the images the student answers right and its baseline wrong, and
    the reverse; and the student's agreement with its teacher, averaged over seeds."""
    from scipy import stats

    from teacher_student.bench.distill_results import table, write_result
    from teacher_student.run.directory import RunDir

    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    runs = {  # seed -> (the kd student's answers, the scratch student's)
        0: ([0, 1, 2, 0, 1, 2, 0, 0], [0, 1, 0, 0, 0, 2, 0, 0]),  # 2 right only, 0 wrong only
        1: ([0, 1, 2, 1, 1, 2, 0, 1], [0, 2, 2, 0, 1, 1, 1, 1]),  # 3 right only, 1 wrong only
    }
    for seed, (kd, scratch) in runs.items():
        for name, column, answers in (("kd", "student_distilled", kd),
                                      ("scratch", "student_scratch", scratch)):
            run = RunDir(tmp_path / f"seed{seed}" / name)
            (run.path / "reports").mkdir(parents=True)
            pd.DataFrame({"label": labels, column: answers}).to_csv(
                run.path / "reports" / "test_answers.csv", index=False)
            accuracy = float(np.mean(np.array(answers) == labels))
            write_result(run, seed, name, accuracy, agreement=0.9 if name == "kd" else None)
        write_result(RunDir(tmp_path / f"seed{seed}" / "teacher"), seed, "teacher", 0.95)
    _, text = table(tmp_path, [0, 1])
    rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
            for line in text.splitlines()[2:]}
    p = stats.binomtest(5, 6, 0.5).pvalue
    assert rows["kd"][5] == f"5 / 1, p {p:.2g}" and rows["scratch"][5] == "-"
    assert rows["kd"][6] == "90.0%" and rows["teacher"][6] == "-"

