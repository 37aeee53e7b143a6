"""Exports of a real trained tiny student: every format written, run and checked against Keras;
and `predict` on real image files, good and bad."""

from __future__ import annotations

import hashlib
import json
import shutil

import keras
import numpy as np
import pandas as pd
import pytest
from helpers import TINY_STUDENT, write_image_folder

from teacher_student import cli
from teacher_student import config as config_module
from teacher_student.data.decoding import Decoding
from teacher_student.data.labeled import read_source
from teacher_student.data.splits import split_table
from teacher_student.models.precision import PrecisionPolicy
from teacher_student.models.student import build_student
from teacher_student.outputs import export, predict, reports
from teacher_student.run.directory import RunDir

FORMATS = ("keras", "savedmodel", "tflite_float32", "tflite_float16", "tflite_int8", "onnx")
EXPORTED_FILES = ("student_distilled.keras", "student_distilled_savedmodel/saved_model.pb",
                  "student_distilled_float32.tflite", "student_distilled_float16.tflite",
                  "student_distilled_int8.tflite", "student_distilled.onnx",
                  "student_distilled_meta.json", "exports.csv", "exports.md")


def trained_student(policy: PrecisionPolicy, images: np.ndarray,
                    labels: np.ndarray) -> keras.Model:
    """A tiny student fitted until its predictions differ from image to image."""
    keras.utils.set_random_seed(0)
    student = build_student(TINY_STUDENT, policy)
    student.compile(optimizer=policy.wrap_optimizer(keras.optimizers.Adam(3e-3)),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    jit_compile=False)
    student.fit(images, labels, batch_size=8, epochs=15, verbose=0)
    return student


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A run directory as distill leaves it (config, split, trained student), then exported."""
    root = tmp_path_factory.mktemp("export")
    folder = write_image_folder(root / "images", per_class=24)
    config = config_module.load(None, [f"data.source={folder}", "data.image_size=32",
                                       "data.channels=3"]).with_dataset(3)
    run = RunDir(root / "run")
    run.write_config(config_module.to_yaml(config))
    table = read_source(str(folder), Decoding(32, 3))
    splits = split_table(table, val_fraction=0.15, test_fraction=0.3, seed=0)
    run.write_split(splits, table.class_names)
    images, labels = export.load_split_images(run.read_split(), "train", 32, 3)
    student = trained_student(PrecisionPolicy("float32"), images, labels)
    run.save_model(student, "student_distilled")
    table = export.export_run(run)
    run_dir = run.path
    rows = pd.read_csv(run_dir / "export" / "exports.csv").set_index("format")
    return run_dir, table, rows, (images, labels)


def test_every_format_is_written_with_its_meta(tiny_run):
    run_dir, table, rows, _ = tiny_run
    for name in EXPORTED_FILES:
        assert (run_dir / "export" / name).exists(), name
    assert list(rows.index) == list(FORMATS)
    meta = json.loads((run_dir / "export" / "student_distilled_meta.json").read_text())
    assert meta["class_names"] == ["class_0", "class_1", "class_2"]
    assert (meta["image_size"], meta["channels"], meta["input_dtype"]) == (32, 3, "uint8")
    keras_file = run_dir / "export" / "student_distilled.keras"
    assert meta["formats"]["keras"] == {"file": keras_file.name, "output": "logits",
                                        "sha256": hashlib.sha256(keras_file.read_bytes())
                                        .hexdigest()}
    assert meta["formats"]["tflite_int8"]["output"] == "probabilities"
    assert "student_distilled (tflite int8)" in table


def test_float_exports_match_keras(tiny_run):
    _, _, rows, _ = tiny_run
    for name in ("keras", "savedmodel", "tflite_float32", "onnx"):
        assert rows.loc[name, "agreement"] == 1.0, name
        assert rows.loc[name, "max_prob_diff"] < 1e-4, name
    assert rows.loc["tflite_float16", "agreement"] >= 0.99
    assert rows.loc["tflite_float16", "max_prob_diff"] < 1e-2


def test_int8_export_is_full_integer_with_uint8_input(tiny_run):
    run_dir, _, rows, _ = tiny_run
    int8 = rows.loc["tflite_int8"]
    assert 0.0 <= int8["agreement"] <= 1.0
    assert int8["agreement"] >= 0.8
    assert (rows["latency_ms"] > 0).all() and (rows["accuracy"] > 0.5).all()
    interpreter = predict.tflite_interpreter(run_dir / "export" / "student_distilled_int8.tflite")
    assert interpreter.get_input_details()[0]["dtype"] == np.uint8
    assert interpreter.get_output_details()[0]["dtype"] == np.float32
    tensor_types = {detail["dtype"] for detail in interpreter.get_tensor_details()}
    assert np.int8 in tensor_types and np.float16 not in tensor_types


def test_exports_join_the_comparison_table(tiny_run):
    run_dir, _, _, _ = tiny_run
    comparison = pd.read_csv(run_dir / "reports" / "comparison.csv")
    assert "student_distilled (tflite float16)" in set(comparison["model"])
    assert {"agreement", "max_prob_diff"} <= set(comparison.columns)
    # A second export replaces its rows instead of adding more.
    rows = comparison.to_dict("records")
    reports.add_to_comparison(rows[:1], run_dir / "reports")
    assert len(pd.read_csv(run_dir / "reports" / "comparison.csv")) == len(rows)


def test_predict_classifies_good_files_and_reports_bad_ones(tiny_run, tmp_path, capsys):
    run_dir, _, _, _ = tiny_run
    folder = write_image_folder(tmp_path / "new", per_class=2)
    (folder / "class_1" / "broken.png").write_bytes(b"not an image")
    model = run_dir / "export" / "student_distilled_int8.tflite"
    assert cli.main(["predict", str(folder), "--model", str(model), "--top", "2"]) == 0
    out, err = capsys.readouterr()
    lines = [line.split("\t") for line in out.strip().splitlines()]
    assert len(lines) == 6
    for path, first, p1, second, p2 in lines:
        assert path.endswith(".png") and {first, second} <= {"class_0", "class_1", "class_2"}
        assert 1.0 >= float(p1) >= float(p2) >= 0.0
    assert "broken.png" in err and "cannot decode" in err
    # beside the model, named after the folder: the same answers
    written = pd.read_csv(model.parent / "predictions" / "new.csv")
    assert list(written.columns) == ["path", "class", "probability", "class_2",
                                     "probability_2"]
    assert written.values.tolist() == [[path, first, pytest.approx(float(p1), abs=1e-4),
                                        second, pytest.approx(float(p2), abs=1e-4)]
                                       for path, first, p1, second, p2 in lines]
    assert "6 predictions written to" in err and "1 images skipped" in err


@pytest.mark.parametrize("name", ["student_distilled.keras", "student_distilled_savedmodel",
                                  "student_distilled.onnx"])
def test_predict_reads_keras_saved_model_and_onnx_alike(tiny_run, name, capsys):
    run_dir, _, _, _ = tiny_run
    image = next((run_dir.parent / "images" / "class_2").glob("*.png"))
    assert cli.main(["predict", str(image), "--model", str(run_dir / "export" / name)]) == 0
    path, class_name, probability = capsys.readouterr().out.strip().split("\t")
    assert path == str(image) and class_name in {"class_0", "class_1", "class_2"}
    assert 0.0 < float(probability) <= 1.0


def test_predict_exits_2_when_nothing_could_be_classified(tiny_run, tmp_path, capsys):
    run_dir, _, _, _ = tiny_run
    (tmp_path / "a.jpg").write_bytes(b"")
    (tmp_path / "b.png").write_text("text")
    model = run_dir / "export" / "student_distilled_float32.tflite"
    assert cli.main(["predict", str(tmp_path), "--model", str(model)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "a.jpg" in err and "b.png" in err


def test_a_mixed_float16_student_exports_in_float32(tiny_run, tmp_path):
    run_dir, _, _, (images, labels) = tiny_run
    student = trained_student(PrecisionPolicy("mixed_float16"), images, labels)
    records = export.export_model(student, tmp_path, "mixed", ["a", "b", "c"], 32, 3,
                                  images[:20])
    for record in records:
        row = export.verify_export(record, student, images, labels)
        assert row["agreement"] >= (0.8 if record.format == "tflite_int8" else 0.99), row
    exported = keras.saving.load_model(tmp_path / "mixed.keras", safe_mode=True)
    assert {layer.dtype_policy.name for layer in exported.layers} == {"float32"}


@pytest.mark.parametrize("name", ["student_distilled.keras", "student_distilled_float32.tflite"])
def test_a_damaged_export_is_an_error_naming_the_file(tiny_run, tmp_path, name, capsys):
    run_dir, _, _, _ = tiny_run
    damaged = tmp_path / name
    shutil.copy(run_dir / "export" / name, damaged)
    shutil.copy(run_dir / "export" / "student_distilled_meta.json", tmp_path)
    damaged.write_bytes(damaged.read_bytes()[:500])
    image = next((run_dir.parent / "images" / "class_2").glob("*.png"))
    assert cli.main(["predict", str(image), "--model", str(damaged)]) == 2
    err = capsys.readouterr().err
    assert f"{damaged} cannot be read" in err and "Traceback" not in err


def test_a_damaged_run_model_is_refused_by_export_naming_it(tiny_run, tmp_path, capsys):
    run_dir, _, _, _ = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("export", ".lock"))
    model = copy / "student_distilled.keras"
    model.write_bytes(model.read_bytes()[:500])
    assert cli.main(["export", "--run-dir", str(copy)]) == 2
    assert f"{model} cannot be read" in capsys.readouterr().err
    assert not (copy / "export").exists()


def test_predict_with_a_run_uses_its_exported_student_and_says_so(tiny_run, tmp_path, capsys):
    run_dir, _, _, _ = tiny_run
    folder = write_image_folder(tmp_path / "test_images", per_class=2)
    out = tmp_path / "submission.csv"
    assert cli.main(["predict", str(folder), "--run-dir", str(run_dir), "--out", str(out),
                     "--top", "3"]) == 0
    printed, err = capsys.readouterr()
    assert printed == ""  # with --out, the file alone
    assert f"predicting with {run_dir / 'export' / 'student_distilled.keras'}: the run's " \
           "distilled student as exported" in err
    written = pd.read_csv(out)
    assert len(written) == 6 and written["path"].str.endswith(".png").all()
    assert list(written.columns)[-2:] == ["class_3", "probability_3"]
    assert (written["probability"] >= written["probability_2"]).all()
    assert set(written["class"]) <= {"class_0", "class_1", "class_2"}


def test_predict_with_a_run_without_exports_uses_its_own_student(tiny_run, tmp_path, capsys):
    run_dir, _, _, _ = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("export", ".lock"))
    image = next((run_dir.parent / "images" / "class_1").glob("*.png"))
    assert cli.main(["predict", str(image), "--run-dir", str(copy)]) == 0
    out, err = capsys.readouterr()
    assert f"predicting with {copy / 'student_distilled.keras'}: the run's distilled student " \
           "(`export` writes a float32 copy" in err
    assert out.split("\t")[0] == str(image)
    stem = image.stem
    assert pd.read_csv(copy / "predictions" / f"{stem}.csv")["path"].tolist() == [str(image)]
    # A run's .keras given as --model finds the run's classes and image size the same way.
    assert cli.main(["predict", str(image), "--model", str(copy / "student_distilled.keras"),
                     "--out", str(tmp_path / "one.csv")]) == 0
    assert pd.read_csv(tmp_path / "one.csv").values.tolist() == \
        pd.read_csv(copy / "predictions" / f"{stem}.csv").values.tolist()


def test_predict_reads_a_csv_of_paths_in_its_order_and_names_the_missing(tiny_run, tmp_path,
                                                                         capsys):
    run_dir, _, _, _ = tiny_run
    images = run_dir.parent / "images"
    shutil.copytree(images, tmp_path / "images")
    listed = ["images/class_2/0.png", "images/gone.png", "images/class_0/3.png"]
    pd.DataFrame({"id": [7, 8, 9], "path": listed}).to_csv(tmp_path / "test.csv", index=False)
    assert cli.main(["predict", str(tmp_path / "test.csv"), "--run-dir", str(run_dir)]) == 0
    err = capsys.readouterr().err
    assert "skipped images/gone.png: cannot read" in err
    written = pd.read_csv(run_dir / "predictions" / "test.csv")
    assert written["path"].tolist() == [listed[0], listed[2]]


def test_predict_without_a_usable_model_or_input_says_what_to_give(tiny_run, tmp_path, capsys):
    run_dir, _, _, _ = tiny_run
    image = next((run_dir.parent / "images" / "class_1").glob("*.png"))
    stray = tmp_path / "stray.keras"
    shutil.copy(run_dir / "student_distilled.keras", stray)
    assert cli.main(["predict", str(image), "--model", str(stray)]) == 2
    assert "no *_meta.json beside it lists this file, and no run directory" in \
        capsys.readouterr().err
    assert cli.main(["predict", str(image), "--run-dir", str(tmp_path / "none")]) == 2
    assert "holds no run (no config.yaml)" in capsys.readouterr().err
    (tmp_path / "bad.csv").write_text("file,label\na.png,x\n")
    assert cli.main(["predict", str(tmp_path / "bad.csv"), "--run-dir", str(run_dir)]) == 2
    assert "needs a column 'path', has ['file', 'label']" in capsys.readouterr().err


def test_without_the_onnx_converter_export_says_what_to_install(tiny_run, tmp_path, capsys,
                                                                 monkeypatch):
    _, _, _, (images, _) = tiny_run
    monkeypatch.setattr(export, "missing_onnx_packages", lambda: ["tf2onnx"])
    student = build_student(TINY_STUDENT, PrecisionPolicy("float32"))
    records = export.export_model(student, tmp_path, "plain", ["a", "b", "c"], 32, 3,
                                  images[:8])
    assert "onnx" not in {record.format for record in records}
    assert not list(tmp_path.glob("*.onnx"))
    lines = [line for line in capsys.readouterr().out.splitlines() if "ONNX" in line]
    assert lines == ["ONNX: not written, tf2onnx not installed here: pip install tf2onnx "
                     "(Keras writes ONNX through tf2onnx on TensorFlow; onnxruntime checks it)"]
