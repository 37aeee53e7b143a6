"""Ctrl-C that always stops a run. The command line's handler raises KeyboardInterrupt as
Python's own does, and also remembers it: an interrupt that lands where a library swallows it
(a bare `except:` in code that runs while a step is traced) still stops the run at the end of
the epoch, once its checkpoint is written (trainer.py asks `received()`)."""

from __future__ import annotations

import signal

_received = False


def handle_interrupts() -> None:
    """Installs the handler: for the command line's own process (a test or a notebook that
    calls `cli.main` keeps its own)."""
    signal.signal(signal.SIGINT, _on_interrupt)


def received() -> bool:
    return _received


def _on_interrupt(signum, frame) -> None:
    global _received
    _received = True
    raise KeyboardInterrupt
