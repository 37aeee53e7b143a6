"""Real image files written with PIL into tmp_path: read, decoded once, split, batched."""

from __future__ import annotations

import io
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from helpers import make_class_folder, write_png
from PIL import Image

from teacher_student.data import embedded as datasets
from teacher_student.data.batches import PADDING, Batches
from teacher_student.data.decoding import Decoding
from teacher_student.data.labeled import read_source
from teacher_student.data.splits import SPLITS, class_weights, split_table
from teacher_student.errors import DataError
from teacher_student.outputs.metrics import softmax
from teacher_student.outputs.reports import predict_probabilities
from teacher_student.run.directory import RunDir
from teacher_student.training.losses import label_loss


def read(source, image_size: int = 16, channels: int = 3, **options):
    return read_source(str(source), Decoding(image_size, channels, **options))


def all_batches(batches: Batches) -> tuple[np.ndarray, np.ndarray]:
    images, labels = zip(*[batches[i][:2] for i in range(len(batches))])
    return np.concatenate(images), np.concatenate(labels)


@pytest.fixture
def three_classes(tmp_path: Path) -> Path:
    return make_class_folder(tmp_path / "images", {"cat": 6, "dog": 6, "fox": 6})


# ---------------------------------------------------------------------------------------------
# Sources.

def test_folder_source_labels_each_image_by_its_folder(three_classes: Path):
    table = read(three_classes)
    assert table.class_names == ("cat", "dog", "fox")
    assert len(table.paths) == 18
    assert table.splits is None and table.skipped == ()
    for path, label in zip(table.paths, table.labels):
        assert Path(path).parent.name == table.class_names[label]


def test_split_folder_layout_keeps_the_given_split(tmp_path: Path):
    root = tmp_path / "kaggle"
    make_class_folder(root / "train", {"a": 4, "b": 4})
    make_class_folder(root / "valid", {"a": 2, "b": 2})
    make_class_folder(root / "test", {"a": 2, "c": 1})  # "c" only here: names are the union
    make_class_folder(root / "train", {"c": 3})
    table = read(root)
    assert table.class_names == ("a", "b", "c")
    assert table.splits is not None
    for path, split in zip(table.paths, table.splits):
        folder = Path(path).parent.parent.name
        assert split == {"train": "train", "valid": "val", "test": "test"}[folder]

    splits = split_table(table, 0.2, 0.2, seed=0)
    assert len(splits["train"].paths) == 11
    assert len(splits["val"].paths) == 4
    assert len(splits["test"].paths) == 3
    assert all("/valid/" in p for p in splits["val"].paths)


def test_split_layout_without_val_carves_val_out_of_train(tmp_path: Path):
    root = tmp_path / "kaggle"
    make_class_folder(root / "train", {"a": 10, "b": 10})
    make_class_folder(root / "test", {"a": 2, "b": 2})
    splits = split_table(read(root), 0.2, 0.5, seed=0)
    assert len(splits["test"].paths) == 4  # the folder's own test split is kept, not carved
    assert len(splits["val"].paths) == 4
    assert sorted(splits["val"].labels) == [0, 0, 1, 1]  # stratified
    assert all("/train/" in p for p in splits["val"].paths)
    assert not set(splits["val"].paths) & set(splits["train"].paths)
    assert len(splits["train"].paths) == 16


def test_csv_source_skips_missing_files_and_empty_labels(tmp_path: Path):
    write_png(tmp_path / "pics" / "a1.png", 1)
    write_png(tmp_path / "pics" / "a2.png", 2)
    absolute = write_png(tmp_path / "elsewhere" / "b1.png", 3)
    write_png(tmp_path / "pics" / "b2.png", 4)
    csv = tmp_path / "labels.csv"
    csv.write_text(
        "path,label\n"
        "pics/a1.png,apple\n"
        "pics/a2.png,apple\n"
        f"{absolute},banana\n"
        "pics/gone.png,banana\n"  # line 5: file does not exist
        "pics/b2.png,\n"  # line 6: empty label
    )
    table = read(csv)
    assert table.class_names == ("apple", "banana")
    assert [Path(p).name for p in table.paths] == ["a1.png", "a2.png", "b1.png"]
    assert table.labels == (0, 0, 1)
    reasons = dict(table.skipped)
    assert reasons[str(tmp_path / "pics" / "gone.png")] == \
        "cannot read: file not found (labels.csv row 5)"
    assert reasons[str(tmp_path / "pics" / "b2.png")] == "labels.csv row 6: empty label"


def test_csv_without_path_and_label_columns_names_the_file(tmp_path: Path):
    csv = tmp_path / "wrong.csv"
    csv.write_text("filename,class\nx.png,a\n")
    with pytest.raises(DataError, match=r"wrong\.csv.*'filename', 'class'"):
        read(csv)


def test_unknown_source_is_a_data_error(tmp_path: Path):
    with pytest.raises(DataError, match="digits, mnist"):
        read(tmp_path / "nowhere")


# ---------------------------------------------------------------------------------------------
# Embedded datasets.

def test_digits_are_materialized_once_and_read_as_a_folder(tmp_path: Path):
    folder = datasets.materialize("digits", tmp_path)
    assert folder == tmp_path / "digits"
    files = sorted(folder.rglob("*.png"))
    assert len(files) == 1797
    assert sorted(p.name for p in folder.iterdir()) == [str(i) for i in range(10)]
    pixels = np.asarray(Image.open(files[0]))
    assert pixels.shape == (8, 8) and pixels.dtype == np.uint8 and pixels.max() > 200
    assert [p.name for p in tmp_path.iterdir()] == ["digits"]  # no staging folder left behind

    mtimes = {p: p.stat().st_mtime_ns for p in files}
    assert datasets.materialize("digits", tmp_path) == folder
    assert {p: p.stat().st_mtime_ns for p in files} == mtimes

    table = read("digits", embedded_dir=tmp_path)
    assert len(table.class_names) == 10 and len(table.paths) == 1797


def test_unknown_embedded_name_lists_the_known_ones(tmp_path: Path):
    with pytest.raises(ValueError, match="digits, mnist"):
        datasets.materialize("cifar", tmp_path)


def test_mnist_loader_gives_the_5000_image_subset():
    images, labels = datasets.EMBEDDED["mnist"]()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert images.max() == 255 and sorted(set(labels.tolist())) == list(range(10))


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("TEACHER_STUDENT_CACHE", str(tmp_path))
    assert datasets.default_cache_dir() == tmp_path


# ---------------------------------------------------------------------------------------------
# Unusable and unusual files.

@pytest.fixture
def odd_folder(tmp_path: Path) -> Path:
    root = make_class_folder(tmp_path / "odd", {"plain": 3})
    odd = root / "odd"
    odd.mkdir()
    rng = np.random.default_rng(0)
    (odd / "zero.png").write_bytes(b"")
    good_jpeg = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(good_jpeg, "JPEG")
    (odd / "truncated.jpg").write_bytes(good_jpeg.getvalue()[: len(good_jpeg.getvalue()) // 2])
    (odd / "text.jpg").write_text("this is not a picture")
    (odd / "notes.txt").write_text("not an image extension")
    # 32768 in 16 bits is 128 in 8 bits when scaled; wrapping would give 0.
    Image.fromarray(np.full((10, 12), 32768, dtype=np.uint16)).save(odd / "deep16.png")
    Image.new("CMYK", (12, 10), (0, 255, 255, 0)).save(odd / "cmyk.jpg")
    Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).convert("P").save(
        odd / "palette.gif"
    )
    Image.fromarray(rng.integers(0, 256, (10, 12), dtype=np.uint8)).save(odd / "gray.PNG")
    Image.fromarray(rng.integers(0, 256, (10, 12, 4), dtype=np.uint8), "RGBA").save(
        odd / "rgba.png"
    )
    return root


def test_broken_files_are_skipped_with_reasons_and_odd_ones_kept(odd_folder: Path):
    table = read(odd_folder)
    reasons = {Path(p).name: reason for p, reason in table.skipped}
    assert reasons["notes.txt"] == "not an image extension"
    assert reasons["zero.png"] == "cannot decode: empty file"
    assert "truncated" in reasons["truncated.jpg"].lower()
    assert "cannot identify image file" in reasons["text.jpg"]
    assert all(reasons[name].startswith("cannot decode: ")
               for name in ("zero.png", "truncated.jpg", "text.jpg"))
    kept = {Path(p).name for p in table.paths}
    assert {"deep16.png", "cmyk.jpg", "palette.gif", "gray.PNG", "rgba.png"} <= kept
    assert not {"zero.png", "truncated.jpg", "text.jpg", "notes.txt"} & kept
    assert len(table.paths) == 8


def test_webp_and_tiff_files_are_read_as_any_image(tmp_path: Path):
    rng = np.random.default_rng(0)
    pixels = {name: rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
              for name in ("a.webp", "b.tif", "c.TIFF")}
    folder = tmp_path / "images" / "photos"
    folder.mkdir(parents=True)
    for name, image in pixels.items():
        Image.fromarray(image).save(folder / name, **({"lossless": True} if "webp" in name
                                                      else {}))
    # 16 bits, scaled down: 32768 of 65535 is 128
    Image.fromarray(np.full((16, 16), 32768, dtype=np.uint16)).save(folder / "deep16.tiff")
    make_class_folder(tmp_path / "images", {"other": 4})
    table = read(tmp_path / "images")
    assert not table.skipped
    decoded = {Path(p).name: table.pixels[row] for p, row in zip(table.paths, table.rows)}
    for name, image in pixels.items():
        np.testing.assert_array_equal(decoded[name], image)  # lossless, same size: exact
    assert np.all(decoded["deep16.tiff"] == 128)


@pytest.mark.parametrize("channels", [1, 3])
def test_odd_images_become_uint8_arrays_of_the_right_shape(odd_folder: Path, channels: int):
    table = read(odd_folder, channels=channels)
    images = table.pixels[list(table.rows)]
    assert images.dtype == np.uint8 and images.shape == (8, 16, 16, channels)
    deep = images[[Path(p).name for p in table.paths].index("deep16.png")]
    assert np.all(deep == 128)  # 32768 of 65535, scaled down, not wrapped
    if channels == 3:
        cmyk = images[[Path(p).name for p in table.paths].index("cmyk.jpg")]
        assert cmyk[..., 0].mean() > 200 and cmyk[..., 1:].mean() < 60  # cyan-free: red


def test_a_npz_of_images_and_labels_is_a_source(tmp_path: Path):
    images = np.random.default_rng(0).integers(0, 256, (12, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "set.npz", images=images, labels=np.repeat([0, 1, 2], 4))
    table = read(tmp_path / "set.npz", image_size=8, channels=1, embedded_dir=tmp_path / "e")
    assert table.class_names == ("0", "1", "2") and len(table.paths) == 12
    assert np.array_equal(table.pixels[list(table.rows)][..., 0][np.argsort(
        [int(Path(p).stem) for p in table.paths])], images)
    np.savez(tmp_path / "wrong.npz", x=images)
    with pytest.raises(DataError, match=r"wrong\.npz: needs arrays 'images' and 'labels'"):
        read(tmp_path / "wrong.npz", embedded_dir=tmp_path / "e")


def test_empty_class_folder_is_left_out_and_recorded(three_classes: Path):
    (three_classes / "empty").mkdir()
    table = read(three_classes)
    assert table.class_names == ("cat", "dog", "fox")
    assert (str(three_classes / "empty"), "empty class folder") in table.skipped


def test_a_single_class_is_a_data_error(tmp_path: Path):
    root = make_class_folder(tmp_path / "one", {"only": 4})
    (root / "empty").mkdir()
    with pytest.raises(DataError, match=r"one.*only 1 class.*'only'"):
        read(root)


def test_a_folder_without_images_is_a_data_error(tmp_path: Path):
    (tmp_path / "none" / "a").mkdir(parents=True)
    (tmp_path / "none" / "a" / "readme.txt").write_text("hi")
    with pytest.raises(DataError, match="no usable images"):
        read(tmp_path / "none")


# ---------------------------------------------------------------------------------------------
# Splitting.

def test_class_too_small_to_split_names_the_class(tmp_path: Path):
    root = make_class_folder(tmp_path / "small", {"big": 10, "tiny": 2})
    table = read(root)
    with pytest.raises(DataError, match="'tiny' has 2 images"):
        split_table(table, 0.2, 0.2, seed=0)
    assert len(split_table(table, 0.2, 0.0, seed=0)["val"].paths) >= 2  # 2 parts: enough


def test_stratified_split_is_disjoint_complete_and_reproducible(tmp_path: Path):
    table = read(make_class_folder(tmp_path / "s", {"a": 10, "b": 10, "c": 10}))
    first = split_table(table, 0.2, 0.2, seed=7)
    again = split_table(table, 0.2, 0.2, seed=7)
    other = split_table(table, 0.2, 0.2, seed=8)
    assert first == again
    assert set(first["val"].paths) != set(other["val"].paths)
    sets = [set(first[name].paths) for name in SPLITS]
    assert sum(len(s) for s in sets) == 30 and set().union(*sets) == set(table.paths)
    assert [sorted(first[name].labels) for name in ("val", "test")] == [[0, 0, 1, 1, 2, 2]] * 2
    for name in SPLITS:
        for path, label in zip(first[name].paths, first[name].labels):
            assert table.labels[table.paths.index(path)] == label


# ---------------------------------------------------------------------------------------------
# Decoded images, batches, weights and records.

def test_decoding_is_the_same_from_memory_and_from_a_disk_cache(three_classes: Path,
                                                                tmp_path: Path):
    in_memory = read(three_classes)
    cache = tmp_path / "cache"
    on_disk = read(three_classes, cache="disk", cache_dir=cache)
    assert isinstance(on_disk.pixels, np.memmap)
    assert np.array_equal(in_memory.pixels[list(in_memory.rows)],
                          on_disk.pixels[list(on_disk.rows)])
    assert sorted(p.name for p in cache.iterdir()) == ["images-16x16x3.json",
                                                       "images-16x16x3.npy"]
    cached = read(three_classes, cache="disk", cache_dir=cache)
    assert cached.pixels.filename == on_disk.pixels.filename  # read back, not decoded again


def test_a_cache_an_interrupted_run_left_is_rebuilt_not_read(three_classes: Path,
                                                              tmp_path: Path):
    cache = tmp_path / "cache"
    whole = read(three_classes, cache="disk", cache_dir=cache)
    expected = np.array(whole.pixels)
    # Killed while writing: the array half written, its description not yet there.
    (cache / "images-16x16x3.json").unlink()
    data = (cache / "images-16x16x3.npy").read_bytes()
    (cache / "images-16x16x3.npy").write_bytes(data[: len(data) // 2])
    rebuilt = read(three_classes, cache="disk", cache_dir=cache)
    assert np.array_equal(np.array(rebuilt.pixels), expected)
    # Damaged after it was written whole (a disk error, a copy cut short): said and rebuilt.
    data = (cache / "images-16x16x3.npy").read_bytes()
    (cache / "images-16x16x3.npy").write_bytes(data[: len(data) // 2])
    assert np.array_equal(np.array(read(three_classes, cache="disk", cache_dir=cache).pixels),
                          expected)
    (cache / "images-16x16x3.json").write_text("{not json")
    assert np.array_equal(np.array(read(three_classes, cache="disk", cache_dir=cache).pixels),
                          expected)
    # A cache of other files (one was changed since) is rebuilt too.
    write_png(three_classes / "cat" / "0.png", seed=99)
    changed = read(three_classes, cache="disk", cache_dir=cache)
    row = changed.rows[changed.paths.index(str(three_classes / "cat" / "0.png"))]
    assert not np.array_equal(changed.pixels[row], expected[row])


def test_training_batches_follow_the_seed_and_the_epoch(three_classes: Path):
    table = read(three_classes)
    def batches(seed: int) -> Batches:
        return Batches(table.pixels, table.rows, table.labels, 4, shuffle=True, seed=seed)

    first = batches(3)
    epoch0 = all_batches(first)[1].tolist()
    first.set_epoch(1)
    epoch1 = all_batches(first)[1].tolist()
    assert len(first) == 4 and len(epoch0) == 16  # 18 images: the ragged batch of 2 dropped
    assert epoch0 != epoch1
    resumed = batches(3)
    resumed.set_epoch(1)  # a run resumed at epoch 1 sees what an uninterrupted one saw
    assert all_batches(resumed)[1].tolist() == epoch1
    assert all_batches(batches(4))[1].tolist() != epoch0


def test_evaluation_batches_keep_the_order_and_the_ragged_last_batch(three_classes: Path):
    table = read(three_classes)
    batches = Batches(table.pixels, table.rows, table.labels, 4)
    images, labels = all_batches(batches)
    assert [len(batches[i][1]) for i in range(len(batches))] == [4, 4, 4, 4, 2]
    assert labels.tolist() == list(table.labels)
    assert np.array_equal(images, table.pixels[list(table.rows)])


def test_a_padded_ragged_batch_is_answered_for_its_real_images_alone(three_classes: Path):
    """What several replicas evaluate: every batch full, the filling labeled PADDING, which
    the loss, the accuracy and the answers leave out."""
    table = read(three_classes)
    batches = Batches(table.pixels, table.rows, table.labels, 4, pad_remainder=True,
                      class_weights={0: 1.0, 1: 2.0, 2: 3.0})
    last_images, last_labels, last_weights = batches[len(batches) - 1]
    assert [len(batches[i][1]) for i in range(len(batches))] == [4] * 5
    assert last_labels.tolist() == [*table.labels[-2:], PADDING, PADDING]
    assert last_weights[2:].tolist() == [0.0, 0.0]
    assert np.array_equal(last_images[2:], table.pixels[[table.rows[-2]] * 2])
    assert batches.images == 18

    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    labels, probabilities = predict_probabilities(model, batches)
    assert labels.tolist() == list(table.labels) and len(probabilities) == 18
    expected = keras.ops.convert_to_numpy(model.predict_on_batch(table.pixels[list(table.rows)]))
    assert np.allclose(probabilities, softmax(expected), atol=1e-5)
    padded = keras.ops.convert_to_numpy(label_loss(last_labels, model(last_images)))
    alone = keras.ops.convert_to_numpy(label_loss(last_labels[:2], model(last_images[:2])))
    assert padded == pytest.approx(alone, rel=1e-5)


def test_class_weights_travel_with_each_training_image(tmp_path: Path):
    table = read(make_class_folder(tmp_path / "w", {"many": 9, "few": 3}))
    weights = class_weights(table.labels, len(table.class_names))
    batches = Batches(table.pixels, table.rows, table.labels, 4, shuffle=True,
                      class_weights=weights)
    _, labels, sample_weights = batches[0]
    assert sample_weights.tolist() == pytest.approx([weights[y] for y in labels.tolist()])


def test_class_weights_are_balanced_for_an_imbalanced_folder(tmp_path: Path):
    table = read(make_class_folder(tmp_path / "w", {"many": 9, "few": 3}))
    weights = class_weights(table.labels, len(table.class_names))
    few, many = table.class_names.index("few"), table.class_names.index("many")
    assert weights[few] == pytest.approx(12 / (2 * 3))
    assert weights[many] == pytest.approx(12 / (2 * 9))
    assert class_weights((0, 0, 1), 3)[2] == 1.0  # a class without images is harmless


def test_write_split_and_skipped_make_readable_csvs(odd_folder: Path, tmp_path: Path):
    table = read(odd_folder)
    splits = split_table(table, 0.0, 0.25, seed=0)
    run = RunDir(tmp_path)
    run.write_split(splits, table.class_names)
    frame = run.read_split()
    assert list(frame.columns) == ["path", "label", "class_name", "split"]
    assert sorted(frame["path"]) == sorted(table.paths)
    assert set(frame["split"]) == {"train", "test"}
    assert all(table.class_names[y] == n for y, n in zip(frame["label"], frame["class_name"]))

    run.write_skipped(table.skipped)
    skipped = pd.read_csv(run.skipped_file)
    assert list(skipped.columns) == ["path", "reason"] and len(skipped) == 4
    assert not list(tmp_path.glob("*.tmp"))


def test_stretched_batches_show_every_image_and_repeat_a_random_few():
    from teacher_student.data.batches import Batches

    pixels = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
    batches = Batches(pixels, range(10), np.arange(10) % 3, 5, shuffle=True, seed=4)
    stretched = batches.stretched(25)
    assert len(stretched) == 5  # the steps of 25 images
    seen = np.concatenate([stretched[i][0].ravel() for i in range(len(stretched))])
    counts = np.bincount(seen, minlength=10)
    assert sorted(counts) == [2] * 5 + [3] * 5  # each twice, five of them once more
    labels = np.concatenate([stretched[i][1] for i in range(len(stretched))])
    np.testing.assert_array_equal(labels, seen % 3)  # each image keeps its label
