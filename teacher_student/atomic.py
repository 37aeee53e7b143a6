"""Atomic writes: a file or folder is written under a temporary name, then renamed into place,
so a run killed mid-write leaves the previous version, never a half-written one.

The temporary file or folder is created as a plain `open(path, "w")` or `mkdir` would create it,
so what is renamed into place has the mode the umask gives (0644, 0755 under the usual 022),
not tempfile's private 0600 and 0700.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

TEMPORARY_PREFIX = ".tmp-"


def replace_atomically(path: str | os.PathLike, write: Callable[[str], object]) -> Path:
    """Calls `write(temporary_path)` next to `path`, then renames it to `path`.

    The temporary name ends with `path`'s own name, so writers that check the suffix
    (`.keras`, `.weights.h5`, `.png`) accept it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = str(_new_file(path.parent, suffix=f"-{path.name}"))
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return path


def _new_file(folder: Path, suffix: str) -> Path:
    """A new empty file in `folder` with a random name, mode 0666 less the umask."""
    while True:
        candidate = folder / f"{TEMPORARY_PREFIX}{secrets.token_hex(6)}{suffix}"
        try:
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return candidate
        except FileExistsError:
            continue


def new_directory(parent: Path, prefix: str = TEMPORARY_PREFIX) -> Path:
    """A new empty folder in `parent` with a random name, mode 0777 less the umask."""
    while True:
        candidate = Path(parent) / f"{prefix}{secrets.token_hex(6)}"
        try:
            candidate.mkdir(mode=0o777)
            return candidate
        except FileExistsError:
            continue


def write_text(path: str | os.PathLike, text: str) -> Path:
    return replace_atomically(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_json(path: str | os.PathLike, data: object) -> Path:
    return write_text(path, json.dumps(data, indent=2, sort_keys=True))


def write_csv(frame, path: str | os.PathLike) -> Path:
    """A pandas DataFrame as UTF-8 CSV, without its index. Text that cannot be encoded (a file
    name that is not valid UTF-8 holds surrogates) is written with backslash escapes."""
    return replace_atomically(path, lambda tmp: frame.to_csv(
        tmp, index=False, encoding="utf-8", errors="backslashreplace"))


def write_bytes(path: str | os.PathLike, content: bytes) -> Path:
    return replace_atomically(path, lambda tmp: Path(tmp).write_bytes(content))


def save_model(model, path: str | os.PathLike) -> Path:
    """The model's architecture and weights, without optimizer state: what one deploys or
    evaluates. (Resume points keep the optimizer state separately.)"""
    # From the config, not clone_model: a clone of a compiled model is compiled too.
    bare = model.__class__.from_config(model.get_config())
    bare.set_weights(model.get_weights())
    return replace_atomically(path, lambda tmp: bare.save(tmp))


def publish_directory(fill: Callable[[Path], object], path: Path) -> Path:
    """Fills a temporary folder next to `path` and renames it to `path` (which must not exist)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = new_directory(path.parent)
    try:
        fill(temporary)
        os.replace(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return path


def remove_leftovers(folder: Path) -> None:
    """Removes what a killed run left under temporary names."""
    for leftover in folder.glob(f"{TEMPORARY_PREFIX}*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
