"""Every image of a source decoded once, in parallel, into one uint8 array: the image cache.

The array lives in memory, or, when it would take more than half of the memory available (or
`data.cache: disk`), in a memory-mapped `.npy` file in the run directory. That file is written
under a temporary name and renamed, and its description (`.json`: the files it holds, their
size and which could not be decoded) is written after it: a cache without its description, or
whose description lists other files, was left by an interrupted run and is rebuilt, never read.
A rerun of the same run directory reads a complete file at once instead of decoding again.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from teacher_student import atomic
from teacher_student.data.decode import UnusableImage, decode_image

CACHE_MODES = ("auto", "memory", "disk")


@dataclass(frozen=True)
class Decoded:
    pixels: np.ndarray  # uint8 [N, size, size, channels], one row per path; in memory or mapped
    problems: tuple[str | None, ...]  # per path: None, or why it could not be decoded


def decode_all(paths: Sequence[str], size: int, channels: int, cache: str = "auto",
               cache_dir: Path | None = None) -> Decoded:
    """The images at `paths`, decoded and resized; `cache` says where the array is kept."""
    shape = (len(paths), size, size, channels)
    file = _cache_file(paths, size, channels, cache_dir) if _on_disk(cache, shape, cache_dir) \
        else None
    if file is not None and (found := _read_cache(file, paths)) is not None:
        print(f"decoded images read from {file}")
        return found
    start = time.perf_counter()
    if file is None:
        pixels = np.zeros(shape, dtype=np.uint8)
        problems = _decode_into(pixels, paths, size, channels)
    else:
        pixels, problems = _write_cache(file, paths, shape)
    if len(paths) >= 1000:
        print(f"decoded {len(paths):,} images to {size}x{size}x{channels} in "
              f"{time.perf_counter() - start:.0f} s" + (f", cached in {file}" if file else ""))
    return Decoded(pixels, tuple(problems))


def _decode_into(pixels: np.ndarray, paths: Sequence[str], size: int,
                 channels: int) -> list[str | None]:
    """Fills `pixels` row by row; threads, because PIL lets go of the GIL while decoding."""
    def decode(index: int) -> str | None:
        try:
            pixels[index] = decode_image(paths[index], size, channels)
        except UnusableImage as err:
            return str(err)
        return None

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(decode, range(len(paths)), chunksize=64))


def _on_disk(cache: str, shape: tuple[int, ...], cache_dir: Path | None) -> bool:
    if cache not in CACHE_MODES:
        raise ValueError(f"data.cache must be one of {list(CACHE_MODES)}, got {cache!r}")
    if cache_dir is None or cache == "memory":
        return False
    return cache == "disk" or int(np.prod(shape)) > _available_memory() // 2


def _available_memory() -> int:
    """Bytes of memory available to new allocations (Linux); a large number elsewhere."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 2**62


def _cache_file(paths: Sequence[str], size: int, channels: int, cache_dir: Path) -> Path:
    return Path(cache_dir) / f"images-{size}x{size}x{channels}.npy"


def _fingerprint(paths: Sequence[str]) -> str:
    """What the cache was decoded from: every file's path, size and modification time."""
    digest = hashlib.sha256()
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{path}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _read_cache(file: Path, paths: Sequence[str]) -> Decoded | None:
    """The cache, when it is whole and of these files; None when it must be decoded again
    (a cache damaged since it was written is said, then rebuilt)."""
    description = file.with_suffix(".json")
    if not (file.exists() and description.exists()):
        return None
    try:
        about = json.loads(description.read_text())
        if about.get("paths_sha256") != _fingerprint(paths):
            return None
        pixels = np.load(file, mmap_mode="r")
        if list(pixels.shape) != about["shape"] or len(about["problems"]) != len(paths):
            raise ValueError(f"holds {list(pixels.shape)}, its description says "
                             f"{about['shape']}")
    except (OSError, ValueError, KeyError, TypeError) as err:
        print(f"image cache {file} is damaged ({err}): decoding the images again")
        return None
    return Decoded(pixels, tuple(about["problems"]))


def _write_cache(file: Path, paths: Sequence[str],
                 shape: tuple[int, ...]) -> tuple[np.ndarray, list[str | None]]:
    file.with_suffix(".json").unlink(missing_ok=True)  # the old description goes first
    problems: list[str | None] = []

    def fill(temporary: str) -> None:
        pixels = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.uint8, shape=shape)
        problems.extend(_decode_into(pixels, paths, shape[1], shape[3]))
        pixels.flush()
        del pixels

    atomic.replace_atomically(file, fill)
    atomic.write_json(file.with_suffix(".json"), {"paths_sha256": _fingerprint(paths),
                                                  "shape": list(shape), "problems": problems})
    return np.load(file, mmap_mode="r"), problems
