"""What a wheel's tags promise: platform vs the target, the Python version and ABI its binaries may use."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.targets import Target, parse_platform
from pipeline.verify.report import WheelReport
from pipeline.verify.wheelname import Tag

_CPYTHON = re.compile(r"^cp(?P<major>\d)(?P<minor>\d+)$")
_FREE_THREADED_ABI = re.compile(r"^cp\d+t$")


@dataclass(frozen=True)
class PythonClaim:
    versions: tuple[str, ...]  # "3.11", ... from cpXY interpreter tags (empty: not CPython-specific)
    abi3: bool  # stable ABI: versions are minimums
    free_threaded: bool = False  # cp313t-style ABI tag: the free-threaded build (Py_GIL_DISABLED)

    @property
    def abi_versions(self) -> tuple[str, ...]:
        """Profile keys of the ABIs claimed: "3.13" or, for the free-threaded build, "3.13t"."""
        suffix = "t" if self.free_threaded else ""
        return tuple(v + suffix for v in self.versions)

    @property
    def minimum(self) -> str | None:
        if not self.versions:
            return None
        return min(self.versions, key=lambda v: int(v.split(".")[1]))


def python_claim(tags: frozenset[Tag]) -> PythonClaim:
    versions = []
    abi3 = any(t.abi == "abi3" for t in tags)
    for tag in tags:
        match = _CPYTHON.match(tag.interpreter)
        if match:
            versions.append(f"{match['major']}.{match['minor']}")
    free_threaded = any(_FREE_THREADED_ABI.match(t.abi) for t in tags)
    ordered = tuple(sorted(set(versions), key=lambda v: int(v.split(".")[1])))
    return PythonClaim(ordered, abi3, free_threaded)


def effective_policy(target: Target, tags: frozenset[Tag]) -> tuple[str, tuple[int, int]] | None:
    """The stricter of the target's policy and the oldest policy the wheel claims for the same family.

    A wheel tagged manylinux_2_17 promises to load on glibc 2.17 whatever target it is checked for, and a
    compound tag (manylinux1.manylinux_2_5.manylinux_2_28) promises every level it names: pip on a glibc 2.5
    system installs it, so the oldest claim decides."""
    own = target.policy_platform
    if own is None:
        return None
    claimed = [
        p.level
        for t in tags
        if (p := parse_platform(t.platform)) and p.family == own.family and p.arch == own.arch
    ]
    version = min([own.level, *claimed])
    return f"{own.family}_{version[0]}_{version[1]}", version


def check_platform(target: Target, tags: frozenset[Tag], report: WheelReport) -> None:
    """A tag-mismatch finding unless pip on the target installs the wheel (Target.accepts)."""
    platforms = sorted({t.platform for t in tags})
    if target.platform_tag == "any":
        if platforms != ["any"]:
            report.add(
                "tag-mismatch",
                f"target 'any' is for pure-Python wheels; this wheel is tagged {', '.join(platforms)}",
            )
        return
    if target.accepts_any(platforms):
        return  # a pure wheel installs everywhere (its binaries, if any, are checked below)
    if target.is_windows:
        report.add(
            "tag-mismatch",
            f"wheel platform {', '.join(platforms)} does not install on {target.name} ({target.platform_tag})",
        )
        return
    if f"linux_{target.arch}" in platforms:
        report.add(
            "tag-mismatch",
            f"wheel is tagged linux_{target.arch}: pip never installs a plain linux wheel from an index; "
            "repair it first",
        )
        return
    report.add(
        "tag-mismatch",
        f"wheel platform {', '.join(platforms)} does not install on {target.name}: pip there accepts "
        f"{target.platform_tag} and older policies of the same family and arch",
    )


_EXT_LINUX = re.compile(r"\.cpython-(?P<ver>\d{2,3})(?P<flags>[a-z]*)-(?P<triplet>[^.]+)\.so$")
_EXT_WINDOWS = re.compile(r"\.cp(?P<ver>\d{2,3})(?P<flags>t?)-(?P<plat>win[^.]*)\.pyd$", re.IGNORECASE)


def check_extension_name(name: str, claim: PythonClaim, report: WheelReport) -> None:
    """An extension's file-name suffix is what the interpreter matches at import: it must fit the tags."""
    base = name.rsplit("/", 1)[-1]
    if base.endswith(".abi3.so"):
        # CPython >= 3.2 on POSIX lists ".abi3.so" in importlib.machinery.EXTENSION_SUFFIXES, so a version-
        # specific wheel may ship one (gevent's _corecffi.abi3.so in cp312 wheels). The free-threaded build
        # (Py_GIL_DISABLED, 3.13t/3.14t) leaves ".abi3.so" out of its suffixes: there it is never found.
        if claim.free_threaded and not claim.abi3:
            report.add(
                "python-tag-mismatch",
                f"{base} is a stable-ABI (abi3) module in a free-threaded wheel ({', '.join(claim.abi_versions)}): "
                "the free-threaded interpreter does not load .abi3.so modules, the import fails",
                file=name,
            )
        elif claim.versions and not claim.abi3 and min(_minor(v) for v in claim.versions) < 2:
            report.add(
                "python-tag-mismatch",
                f"{base} is a stable-ABI (abi3) module; CPython {claim.minimum} predates .abi3.so (3.2)",
                file=name,
            )
        return
    match = _EXT_LINUX.search(base) or _EXT_WINDOWS.search(base)
    if not match or not claim.versions:
        return
    digits = match["ver"]
    version = f"{digits[0]}.{digits[1:]}"
    threaded = "t" in match["flags"].lower()
    if claim.versions and not claim.abi3 and threaded != claim.free_threaded and version in claim.versions:
        built, tagged = ("free-threaded", "default (GIL)") if threaded else ("default (GIL)", "free-threaded")
        report.add(
            "python-tag-mismatch",
            f"{base} is built for the {built} CPython {version}, but the wheel is tagged for the {tagged} "
            "build: the interpreter will not find the module",
            file=name,
        )
        return
    if claim.abi3:
        report.add(
            "python-tag-mismatch",
            f"{base} is built for CPython {version} only (its suffix), but the wheel is tagged abi3 "
            f"(for CPython {claim.minimum} and later)",
            file=name,
        )
    elif version not in claim.versions:
        report.add(
            "python-tag-mismatch",
            f"{base} is built for CPython {version}, but the wheel is tagged for {', '.join(claim.versions)}: "
            "the interpreter will not find the module",
            file=name,
        )


def _minor(version: str) -> int:
    return int(version.split(".")[1])
