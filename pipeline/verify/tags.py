"""What a wheel's tags promise: platform vs the target, the Python version and ABI its binaries may use."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.targets import Target
from pipeline.verify.report import WheelReport
from pipeline.verify.wheelname import Tag

_LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
_POLICY_TAG = re.compile(r"^(?P<family>manylinux|musllinux)_(?P<major>\d+)_(?P<minor>\d+)_(?P<arch>.+)$")
_LEGACY_TAG = re.compile(r"^(?P<name>manylinux1|manylinux2010|manylinux2014)_(?P<arch>.+)$")
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


def platform_policy(platform: str) -> tuple[str, tuple[int, int], str] | None:
    """("manylinux", (2, 17), "x86_64") for manylinux_2_17_x86_64 / manylinux2014_x86_64; None otherwise."""
    match = _POLICY_TAG.match(platform)
    if match:
        return match["family"], (int(match["major"]), int(match["minor"])), match["arch"]
    legacy = _LEGACY_TAG.match(platform)
    if legacy:
        return "manylinux", _LEGACY_MANYLINUX[legacy["name"]], legacy["arch"]
    return None


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
    if not target.policy:
        return None
    family_and_version = platform_policy(f"{target.policy}_{target.arch}")
    if family_and_version is None:
        return None
    family, version, _ = family_and_version
    claimed = [
        p[1] for t in tags if (p := platform_policy(t.platform)) and p[0] == family and p[2] == target.arch
    ]
    if claimed:
        version = min(version, min(claimed))
    return f"{family}_{version[0]}_{version[1]}", version


def targets_for_tags(tags: frozenset[Tag]) -> list[str]:
    """The catalogue targets a wheel's own tags name: for Linux, per family and arch the target of the
    oldest level claimed (every level of a compound tag is a promise; the oldest is the strictest); for
    Windows, the desktop target of the platform tag (editions such as nanoserver are opt-in)."""
    from pipeline.targets import catalogue

    platforms = {t.platform for t in tags}
    if platforms == {"any"}:
        return ["any"]
    known = catalogue()
    oldest: dict[tuple[str, str], tuple[int, int]] = {}
    chosen: list[str] = []
    for platform in sorted(platforms):
        parsed = platform_policy(platform)
        if parsed:
            family, version, arch = parsed
            key = (family, arch)
            if key not in oldest or version < oldest[key]:
                oldest[key] = version
            continue
        for target in known.values():
            if not target.channel and target.is_windows and target.platform_tag == platform:
                chosen.append(target.name)
                break
    for (family, arch), version in sorted(oldest.items()):
        name = f"{family}_{version[0]}_{version[1]}_{arch}"
        if name in known:
            chosen.append(name)
    return chosen


def target_for_tags(tags: frozenset[Tag]) -> str | None:
    """The first of targets_for_tags (kept for callers that want one name)."""
    found = targets_for_tags(tags)
    return found[0] if found else None


def check_platform(target: Target, tags: frozenset[Tag], report: WheelReport) -> None:
    platforms = sorted({t.platform for t in tags})
    if target.platform_tag == "any":
        if platforms != ["any"]:
            report.add(
                "tag-mismatch",
                f"target 'any' is for pure-Python wheels; this wheel is tagged {', '.join(platforms)}",
            )
        return
    if platforms == ["any"]:
        return  # a pure wheel installs everywhere; its binaries (if any) are checked below
    if target.is_windows:
        if target.platform_tag not in platforms:
            report.add(
                "tag-mismatch",
                f"wheel platform {', '.join(platforms)} does not install on {target.name} ({target.platform_tag})",
            )
        return
    wanted = platform_policy(target.platform_tag)
    for platform in platforms:
        if platform in (target.platform_tag, *target.legacy_tags):
            return
        parsed = platform_policy(platform)
        if parsed and wanted and parsed[0] == wanted[0] and parsed[2] == wanted[2] and parsed[1] <= wanted[1]:
            return  # an older policy of the same family and arch installs on a newer system
        if platform == f"linux_{target.arch}":
            report.add(
                "tag-mismatch",
                f"wheel is tagged {platform}: pip never installs a plain linux wheel from an index; repair it first",
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
