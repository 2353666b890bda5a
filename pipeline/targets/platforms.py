"""Parsing a wheel's platform tag, once for all of rewheel.

A Linux policy tag names a libc family, a level and an architecture: manylinux_2_17_x86_64 (PEP 600),
musllinux_1_2_aarch64 (PEP 656), and the legacy manylinux aliases (manylinux1/2010/2014, PEP 513/571/599)
that auditwheel's policy data maps to their levels. Anything else (win_amd64, linux_x86_64, any) is not a
policy tag and parses to None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

_POLICY_TAG = re.compile(r"^(?P<family>manylinux|musllinux)_(?P<major>\d+)_(?P<minor>\d+)_(?P<arch>\w+)$")


@dataclass(frozen=True, order=True)
class PolicyPlatform:
    family: str  # "manylinux" | "musllinux"
    level: tuple[int, int]  # (2, 17): glibc 2.17; (1, 2): musl 1.2
    arch: str

    @property
    def libc(self) -> str:
        return "glibc" if self.family == "manylinux" else "musl"

    @property
    def policy(self) -> str:
        """The policy name auditwheel uses: manylinux_2_17, musllinux_1_2."""
        return f"{self.family}_{self.level[0]}_{self.level[1]}"

    @property
    def tag(self) -> str:
        return f"{self.policy}_{self.arch}"

    def runs_on(self, other: PolicyPlatform) -> bool:
        """A wheel of this platform loads where `other` is promised: same libc and arch, level no newer."""
        return self.family == other.family and self.arch == other.arch and self.level <= other.level


@cache
def legacy_aliases() -> dict[str, tuple[int, int]]:
    """Legacy alias -> level, from auditwheel's installed policy data ("manylinux2014" -> (2, 17))."""
    from pipeline.profiles import linux_policies

    aliases: dict[str, tuple[int, int]] = {}
    for entry in linux_policies():
        found = re.fullmatch(r"manylinux_(\d+)_(\d+)", entry["name"])
        if found:
            for alias in entry.get("aliases", ()):
                aliases[alias] = (int(found[1]), int(found[2]))
    return aliases


@cache
def parse_platform(platform: str) -> PolicyPlatform | None:
    """manylinux_2_17_x86_64 / manylinux2014_x86_64 -> PolicyPlatform("manylinux", (2, 17), "x86_64");
    None for a tag that is not a Linux policy tag."""
    found = _POLICY_TAG.match(platform)
    if found:
        return PolicyPlatform(found["family"], (int(found["major"]), int(found["minor"])), found["arch"])
    alias, _, arch = platform.partition("_")
    level = legacy_aliases().get(alias)
    if level is not None and arch:
        return PolicyPlatform("manylinux", level, arch)
    return None
