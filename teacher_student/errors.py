"""What the user must fix, as one family of exceptions.

The library raises these; only the command line turns them into a one-line message and an exit
status (2; 1 for a failed preflight), so a notebook or a script that calls the library gets an
exception it can catch. Each message names what to fix: the config key, the file, folder or
class, the run directory.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user must fix before the run can go on; the message says what."""


class ConfigError(UserError, ValueError):
    """A configuration value that cannot be used; the message starts with its dotted key."""


class DataError(UserError, ValueError):
    """Data that would make training meaningless; the message names the file, folder or class."""


class RunDirError(UserError):
    """A run directory that cannot hold the run: not writable, full, locked, or missing what a
    job needs (a teacher before distilling)."""


class NonFiniteLoss(UserError, RuntimeError):
    """The loss became NaN or infinite: the step stopped, its last good checkpoint is kept."""


class PreflightFailed(UserError):
    """A step of the plan cannot run on this machine, with any known fallback; the message
    names the step, what was being done and the cause. The command line exits with status 1."""


class TimeBudgetReached(Exception):
    """The run's time budget ends before the next epoch would: everything is saved, and the
    same command continues. Not an error: the command line exits with status 3."""
