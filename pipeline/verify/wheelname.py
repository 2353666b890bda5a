"""Wheel file names to tags, without importing packaging.tags (which pulls in platform, sysconfig and
logging: more start-up time than verifying a small wheel)."""

from __future__ import annotations

import re
from typing import NamedTuple

from pipeline.errors import RewheelError

_PART = re.compile(r"^[A-Za-z0-9_.+!]+$")


class Tag(NamedTuple):
    interpreter: str
    abi: str
    platform: str

    def __str__(self) -> str:
        return f"{self.interpreter}-{self.abi}-{self.platform}"


class InvalidWheelName(RewheelError):
    """A file name that is not NAME-VERSION[-BUILD]-PY-ABI-PLATFORM.whl."""


def wheel_tags(filename: str) -> frozenset[Tag]:
    """The expanded tag set of a wheel file name (compressed tag sets like cp311.cp312 expanded)."""
    if not filename.endswith(".whl"):
        raise InvalidWheelName(f"{filename}: a wheel file name ends with .whl")
    parts = filename[: -len(".whl")].split("-")
    if len(parts) not in (5, 6) or not all(parts) or not all(_PART.match(p) for p in parts):
        raise InvalidWheelName(f"{filename}: not NAME-VERSION[-BUILD]-PYTHON-ABI-PLATFORM.whl")
    if len(parts) == 6 and not parts[2][:1].isdigit():
        raise InvalidWheelName(f"{filename}: a build tag must start with a digit")
    interpreters, abis, platforms = (p.lower().split(".") for p in parts[-3:])
    return frozenset(Tag(i, a, p) for i in interpreters for a in abis for p in platforms)
