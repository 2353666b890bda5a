"""Errors the user can act on, and the exit codes every command shares.

Stages raise `RewheelError` (or a subclass) for bad input; the CLI prints its message as one line and
exits with its code. Anything else escaping a stage is a bug in rewheel and keeps its traceback.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FINDINGS = 1  # the command ran and found problems (verify findings, failed jobs, failed imports)
EXIT_USAGE = 2  # unusable input: bad recipe, bad archive, hash mismatch, unknown target
EXIT_CANNOT_HOST = 3  # smoke: this machine cannot host the target (e.g. Windows); not a failure of the wheel
EXIT_NEEDS_REVIEW = 4  # recipe new: the recipe is written, but its [test] is incomplete (see its comments)


class RewheelError(Exception):
    """Bad input or an unusable environment; shown to the user as one line."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str) -> None:
        # One line, always: a multi-line message would read like a traceback in logs.
        super().__init__(" ".join(str(message).split()))


class RecipeError(RewheelError):
    """A recipe file is invalid; the message names the file and the key."""


class FetchError(RewheelError):
    """A source could not be fetched or did not match its pinned hash."""


class HashMismatch(FetchError):
    def __init__(self, what: str, expected: str, actual: str) -> None:
        super().__init__(f"sha256 mismatch for {what}: expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual


class UnsafeArchive(RewheelError):
    """An archive tried to write outside its destination, or is too large."""


class MissingTool(RewheelError):
    """A tool the command needs is not installed; the message says how to get it."""
