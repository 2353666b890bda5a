"""musl runtime profiles (resources/musl-profiles.toml): which musl a musllinux target's loader is.

The default profile stands for every Alpine release still supported; each legacy profile becomes a named
target `<policy>_<arch>-musl<version>` with the same platform tag. The export list of each profile lives in
pipeline/profiles/data/<name>.json.gz, regenerated from the pinned Debian .debs listed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from pipeline import toml
from pipeline.util import version_key


@dataclass(frozen=True)
class MuslDeb:
    """A pinned Debian musl package whose libc.so is the profile's export list for one architecture."""

    arch: str
    suite: str
    package: str
    version: str
    filename: str
    sha256: str


@dataclass(frozen=True)
class MuslProfile:
    name: str  # musl_1_2_5: the profile data's name
    musl_version: str  # "1.2.5"
    summary: str
    stands_for: tuple[str, ...]
    reviewed: str
    facts: str
    regenerate: str
    debs: tuple[MuslDeb, ...]
    default: bool
    channel: str | None = None

    @property
    def version_key(self) -> tuple[int, ...]:
        return version_key(self.musl_version)

    @property
    def arches(self) -> tuple[str, ...]:
        return tuple(deb.arch for deb in self.debs)

    @property
    def target_suffix(self) -> str:
        """What a legacy profile adds to the target name: "-musl1.2.3" (the default profile adds nothing)."""
        return "" if self.default else f"-musl{self.musl_version}"


def _load() -> dict[str, Any]:
    text = resources.files("pipeline").joinpath("resources/musl-profiles.toml").read_text(encoding="utf-8")
    return toml.loads(text)


@cache
def musl_profiles() -> dict[str, MuslProfile]:
    """Every musl profile, the default first, then the legacy ones newest first."""
    data = _load()
    default = data["default"]
    found = []
    for name, entry in data["profile"].items():
        debs = tuple(MuslDeb(arch=arch, **deb) for arch, deb in entry.get("debs", {}).items())
        found.append(
            MuslProfile(
                name=name,
                musl_version=entry["musl_version"],
                summary=entry["summary"],
                stands_for=tuple(entry["stands_for"]),
                reviewed=entry["reviewed"],
                facts=entry["facts"],
                regenerate=entry["regenerate"],
                debs=debs,
                default=name == default,
                channel=entry.get("channel"),
            )
        )
    found.sort(key=lambda p: (not p.default, tuple(-n for n in p.version_key)))
    return {p.name: p for p in found}


def default_musl_profile() -> MuslProfile:
    return next(p for p in musl_profiles().values() if p.default)
