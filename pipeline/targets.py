"""The target catalogue: which platforms rewheel builds for and what their loaders provide.

The catalogue is data (resources/targets.toml); this module only loads and looks it up.
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources

from pipeline import toml
from pipeline.errors import RewheelError


@dataclass(frozen=True)
class Target:
    name: str
    platform_tag: str
    os: str  # "linux" | "windows"
    arch: str  # x86_64, aarch64, AMD64, ARM64 (each OS's own spelling, as cibuildwheel uses it)
    profile: str
    cibw_platform: str
    cibw_arch: str
    cibw_identifier: str  # the part after "cp311-" in a cibuildwheel build identifier
    libc: str | None = None  # linux: "glibc" | "musl"
    policy: str | None = None  # linux: manylinux_2_17, musllinux_1_2, ...
    edition: str | None = None  # windows: desktop | servercore | nanoserver
    cibw_image: str | None = None
    channel: str | None = None  # a separate index where pip cannot tell builds apart by tag
    legacy_tags: tuple[str, ...] = field(default=())

    @property
    def is_linux(self) -> bool:
        return self.os == "linux"

    @property
    def is_windows(self) -> bool:
        return self.os == "windows"

    @property
    def is_musl(self) -> bool:
        return self.libc == "musl"

    def build_identifier(self, python: str) -> str:
        """cibuildwheel's identifier for this target and a Python version such as "3.11"."""
        return f"{python_tag(python)}-{self.cibw_identifier}"

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["legacy_tags"] = list(self.legacy_tags)
        return data


def python_tag(version: str) -> str:
    """ "3.11" -> "cp311" (rewheel builds CPython wheels)."""
    major, _, minor = version.partition(".")
    return f"cp{major}{minor}"


@cache
def catalogue() -> dict[str, Target]:
    text = resources.files("pipeline").joinpath("resources/targets.toml").read_text(encoding="utf-8")
    entries = toml.loads(text)["target"]
    targets = {}
    for entry in entries:
        entry = dict(entry)
        entry["legacy_tags"] = tuple(entry.get("legacy_tags", ()))
        targets[entry["name"]] = Target(**entry)
    return targets


def get_target(name: str) -> Target:
    try:
        return catalogue()[name]
    except KeyError:
        known = ", ".join(catalogue())
        raise RewheelError(f"unknown target {name!r}; known targets: {known}") from None


def match_targets(pattern: str) -> list[Target]:
    """Targets whose name matches a shell-style pattern ("musllinux_*", "*aarch64")."""
    return [t for name, t in catalogue().items() if fnmatch.fnmatchcase(name, pattern)]
