"""One process per run directory.

A training job holds an exclusive lock on `RUN/.lock` while it runs; a second process started
on the same directory (a notebook cell run twice) stops at once, naming the holder. The lock is
the operating system's (`flock`): it goes with the process, so a killed run leaves no lock
behind, only its note of who held it, which the next holder overwrites.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from teacher_student.errors import RunDirError

try:
    import fcntl
except ImportError:  # Windows: no flock; runs there are not locked
    fcntl = None

LOCK_FILE = ".lock"


@contextmanager
def hold(run_path: Path) -> Iterator[None]:
    """The run directory `run_path`, locked for this process until the block ends."""
    path = Path(run_path) / LOCK_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")
    except OSError as err:
        raise RunDirError(f"run directory {run_path} is not writable: {err}") from err
    with handle:
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                raise RunDirError(f"{run_path} is in use by {_describe(handle.read())}; let it "
                                  "finish or stop it, or use another --run-dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                                 "command": " ".join(sys.argv)}))
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)


def _describe(note: str) -> str:
    try:
        holder = json.loads(note)
    except ValueError:
        return "another process"
    return (f"process {holder['pid']} on {holder['host']} since {holder['since']} "
            f"({holder['command']})")
