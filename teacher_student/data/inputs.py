"""A job's inputs: the source read and decoded once, split, recorded in the run directory,
and served as training, validation and test batches."""

from __future__ import annotations

from dataclasses import dataclass

from teacher_student.config import DataConfig
from teacher_student.data.batches import Batches
from teacher_student.data.sources import Decoding, read_source
from teacher_student.data.splits import class_weights, split_table
from teacher_student.errors import DataError
from teacher_student.run_dir import RunDir


@dataclass(frozen=True)
class Inputs:
    train: Batches  # shuffled, seeded per epoch, class-weighted when the config says so
    val: Batches
    test: Batches
    class_names: tuple[str, ...]


def prepare_inputs(settings: DataConfig, run_dir: RunDir, global_batch: int,
                   replicas: int = 1, to_device: bool = False) -> Inputs:
    decoding = Decoding(settings.image_size, settings.channels, settings.cache, run_dir.cache)
    table = read_source(settings.source, decoding)
    run_dir.write_skipped(table.skipped)
    if table.skipped:
        print(f"skipped {len(table.skipped)} unusable files (listed in "
              f"{run_dir.skipped_file}):")
        for path, reason in table.skipped[:10]:
            print(f"  {path}: {reason}")
    splits = split_table(table, settings.val_fraction, settings.test_fraction, settings.seed)
    run_dir.write_split(splits, table.class_names)
    print(f"data {settings.source}: {len(table.class_names)} classes, "
          + ", ".join(f"{name} {len(split.paths)}" for name, split in splits.items()))
    if replicas > 1:  # replicas need equal shares: a ragged batch fails under tf.distribute
        for name, split in splits.items():
            if len(split.paths) < global_batch:
                raise DataError(
                    f"the {name} split has {len(split.paths)} images, fewer than the global "
                    f"batch {global_batch} of {replicas} replicas; lower data.batch_size or "
                    "give the split a larger fraction")

    def batches(name: str, **options) -> Batches:
        split = splits[name]
        return Batches(table.pixels, split.rows, split.labels, global_batch,
                       drop_remainder=True if replicas > 1 else None, to_device=to_device,
                       **options)

    weights = (class_weights(splits["train"].labels, len(table.class_names))
               if settings.class_weights else None)
    return Inputs(batches("train", shuffle=True, seed=settings.seed, class_weights=weights),
                  batches("val"), batches("test"), table.class_names)
