"""Target identity, in one place: which platforms rewheel builds for and what their loaders provide.

A target = a wheel platform tag + the runtime profile the loader meets where users deploy. This package
answers every question about targets: the catalogue (`catalogue`, `get_target`, `match_targets`), how a
platform tag is parsed (`platforms.parse_platform`), which platforms a target accepts (`Target.accepts`),
which target a wheel is for (`target_for_tags`, one tie-break rule), and which runtime can host a target
(`hosts`).

The catalogue is data. Linux targets come from auditwheel's policy data (one target per manylinux_2_N /
musllinux_1_N level and per architecture the policy knows, among LINUX_ARCHES), read at run time from the
installed auditwheel, so a new auditwheel brings its new levels; cibuildwheel's pinned image list says which of
them cibuildwheel can build (the cibuildwheel backend's `cibw_image`). musl targets carry a runtime profile (resources/musl-profiles.toml):
the default one stands for every supported Alpine release, and each legacy profile adds a named target
`<policy>_<arch>-musl<version>` with the same tag. resources/targets.toml holds everything that is not in
those: the Windows editions, `any`, and per-name overrides of the generated Linux entries.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from importlib import resources
from typing import Protocol

from pipeline import toml
from pipeline.errors import RewheelError
from pipeline.targets.musl import MuslProfile, default_musl_profile, musl_profiles
from pipeline.targets.platforms import PolicyPlatform, parse_platform
from pipeline.util import version_key

__all__ = [
    "LINUX_ARCHES",
    "MuslProfile",
    "PolicyPlatform",
    "Target",
    "catalogue",
    "default_musl_profile",
    "get_target",
    "hosts",
    "match_targets",
    "musl_profiles",
    "parse_platform",
    "python_tag",
    "target_for_tags",
    "targets_for_tags",
]


@dataclass(frozen=True)
class Target:
    name: str
    platform_tag: str
    os: str  # "linux" | "windows"
    arch: str  # x86_64, aarch64, AMD64, ARM64 (each OS's own spelling, as cibuildwheel uses it)
    profile: str
    libc: str | None = None  # linux: "glibc" | "musl"
    policy: str | None = None  # linux: manylinux_2_17, musllinux_1_2, ...
    edition: str | None = None  # windows: desktop | servercore | nanoserver
    channel: str | None = None  # a separate index where pip cannot tell builds apart by tag
    legacy_tags: tuple[str, ...] = field(default=())
    musl_version: str | None = None  # musl: the version of the profile's loader ("1.2.5"); None elsewhere
    stands_for: str = ""  # what the target promises, for people: "Alpine 3.20, ... (musl 1.2.5)"

    @property
    def is_linux(self) -> bool:
        return self.os == "linux"

    @property
    def is_windows(self) -> bool:
        return self.os == "windows"

    @property
    def is_musl(self) -> bool:
        return self.libc == "musl"

    @property
    def policy_platform(self) -> PolicyPlatform | None:
        """The target's own tag, parsed (Linux policy targets only)."""
        return parse_platform(self.platform_tag) if self.is_linux else None

    @property
    def musl_version_key(self) -> tuple[int, ...] | None:
        """(1, 2, 5) for a musl target's profile; None for other targets."""
        if self.musl_version is None:
            return None
        return version_key(self.musl_version)

    def accepts(self, platform: str) -> bool:
        """Does a wheel tagged `platform` install and load here (what pip on the target accepts)? A pure
        wheel ("any") installs everywhere; a Linux policy target takes older levels of the same libc and arch
        and its legacy aliases; other targets their own tag."""
        if platform == "any" or platform in (self.platform_tag, *self.legacy_tags):
            return True
        own = self.policy_platform
        wheel = parse_platform(platform)
        return bool(own and wheel and wheel.runs_on(own))

    def accepts_any(self, platforms: Iterable[str]) -> bool:
        """A wheel with several platform tags installs when one of them is accepted."""
        return any(self.accepts(p) for p in platforms)

    def compatible_platforms(self) -> list[str]:
        """The platform tags a wheel that loads on this target may carry, newest policy first (packaging's and
        pip's --platform order): musllinux_1_2 also takes 1_1 and 1_0; manylinux_2_17 takes every
        manylinux_2_N down to 2_5 with the legacy aliases beside their levels. Other targets: their own tag."""
        from pipeline.targets.platforms import legacy_aliases

        own = self.policy_platform
        if own is None:
            return [self.platform_tag]
        major, minor = own.level
        if own.family == "musllinux":
            return [f"musllinux_{major}_{m}_{self.arch}" for m in range(minor, -1, -1)]
        by_level = {level: alias for alias, level in legacy_aliases().items()}
        platforms = []
        for m in range(minor, 4, -1):
            platforms.append(f"manylinux_{major}_{m}_{self.arch}")
            alias = by_level.get((major, m))
            if alias:
                platforms.append(f"{alias}_{self.arch}")
        return platforms

    def to_json(self) -> dict[str, object]:
        """The target's own fields. Backends add their words for it at the JSON's edges (the cibw_* fields:
        pipeline.builders.backends.cibuildwheel_ids.target_json), so this package imports no backend."""
        data = asdict(self)
        data["legacy_tags"] = list(self.legacy_tags)
        return data


def python_tag(version: str) -> str:
    """ "3.11" -> "cp311" (rewheel builds CPython wheels)."""
    major, _, minor = version.partition(".")
    return f"cp{major}{minor}"


# Architectures rewheel offers Linux targets for (where the policy has them): the ones cibuildwheel builds.
LINUX_ARCHES = ("x86_64", "aarch64", "i686", "ppc64le", "s390x", "armv7l")


def _policy_key(policy: str) -> tuple[int, int, int]:
    family, _, version = policy.partition("_")
    major, _, minor = version.partition("_")
    return (0 if family == "manylinux" else 1, int(major), int(minor))


def policy_targets() -> list[Target]:
    """One target per (policy level, arch) in auditwheel's manylinux and musllinux policies, oldest first;
    for musl, the default profile's target and then one per legacy profile (where that profile has data for
    the arch)."""
    from pipeline.profiles import linux_policies

    targets = []
    for entry in sorted(linux_policies(), key=lambda e: _policy_key(e["name"])):
        policy = entry["name"]
        family = policy.partition("_")[0]
        for arch in LINUX_ARCHES:
            if arch not in entry["symbol_versions"]:
                continue
            base = Target(
                name=f"{policy}_{arch}",
                platform_tag=f"{policy}_{arch}",
                legacy_tags=tuple(f"{alias}_{arch}" for alias in entry.get("aliases", ())),
                os="linux",
                arch=arch,
                libc="glibc",
                policy=policy,
                profile=f"{policy}_{arch}",
                stands_for=_glibc_stands_for(policy),
            )
            if family != "musllinux":
                targets.append(base)
                continue
            for musl in musl_profiles().values():
                if not musl.default and arch not in musl.arches:
                    continue
                targets.append(_musl_target(base, musl))
    return targets


def _glibc_stands_for(policy: str) -> str:
    parsed = parse_platform(f"{policy}_any")
    version = f"{parsed.level[0]}.{parsed.level[1]}" if parsed else policy
    return f"glibc {version} or newer (any distribution with it)"


def _musl_target(base: Target, musl: MuslProfile) -> Target:
    return replace(
        base,
        name=base.name + musl.target_suffix,
        libc="musl",
        profile=musl.name,
        musl_version=musl.musl_version,
        channel=musl.channel,
        stands_for=f"{musl.summary}: {', '.join(musl.stands_for)} (musl {musl.musl_version}; reviewed "
        f"{musl.reviewed})",
    )


@cache
def catalogue() -> dict[str, Target]:
    """Every target: `any`, the policy-generated Linux targets (oldest policy first within each family, as
    consumers that pick "the oldest target that accepts a tag" rely on), then the Windows ones. An entry
    of targets.toml with a generated name overrides the generated one."""
    text = resources.files("pipeline").joinpath("resources/targets.toml").read_text(encoding="utf-8")
    listed = {}
    for entry in toml.loads(text)["target"]:
        entry = dict(entry)
        entry["legacy_tags"] = tuple(entry.get("legacy_tags", ()))
        listed[entry["name"]] = Target(**entry)
    targets = {name: t for name, t in listed.items() if t.os == "any"}
    for generated in policy_targets():
        targets[generated.name] = listed.pop(generated.name, generated)
    for name, target in listed.items():
        targets.setdefault(name, target)
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


class _Tagged(Protocol):
    @property
    def platform(self) -> str: ...


def _platforms(tags: Iterable[_Tagged | str]) -> set[str]:
    return {t if isinstance(t, str) else t.platform for t in tags}


def targets_for_tags(tags: Iterable[_Tagged | str], channel: str | None = None) -> list[Target]:
    """The catalogue targets a wheel's tags are meant for, one per claim: per libc family and arch the
    oldest policy level the tags name (every level of a compound tag is a promise; the oldest is the
    strictest), and each other platform tag as it is. A pure wheel: ["any"].

    The one tie-break rule: for each claim, the first target in catalogue order (oldest policy first, a musl
    tag's default profile before the legacy ones) that accepts it, among the targets of `channel` (none: the
    targets without a channel, i.e. the default profile or Windows desktop; a channel with no such target
    falls back to those)."""
    platforms = _platforms(tags)
    known = catalogue()
    if platforms == {"any"}:
        return [known["any"]]
    oldest: dict[tuple[str, str], PolicyPlatform] = {}
    claims: set[str] = set()
    for platform in platforms - {"any"}:
        parsed = parse_platform(platform)
        if parsed is None:
            claims.add(platform)
        elif (parsed.family, parsed.arch) not in oldest or parsed < oldest[(parsed.family, parsed.arch)]:
            oldest[(parsed.family, parsed.arch)] = parsed
    claims.update(p.tag for p in oldest.values())
    chosen: list[Target] = []
    for claim in sorted(claims):
        accepting = [t for t in known.values() if t.os != "any" and t.accepts(claim)]
        for wanted in dict.fromkeys((channel, None)):
            in_channel = [t for t in accepting if t.channel == wanted]
            if in_channel:
                if in_channel[0] not in chosen:
                    chosen.append(in_channel[0])
                break
    return chosen


def target_for_tags(tags: Iterable[_Tagged | str], channel: str | None = None) -> Target:
    """The target a wheel is for (the first of targets_for_tags); RewheelError when no target accepts it."""
    found = targets_for_tags(tags, channel)
    if not found:
        platforms = ", ".join(sorted(_platforms(tags)))
        raise RewheelError(f"no target in the catalogue accepts the platform tags {platforms}; pass --target")
    return found[0]


def hosts(runtime_target: Target, wanted: Target) -> bool:
    """Can a runtime built for `runtime_target` host (import) a wheel for `wanted`? The same target, or a
    Linux target of the same libc and arch whose policy is no newer (a newer glibc loads older manylinux
    wheels) and, for musl, the same runtime profile: a musl 1.2.5 loader would hide what a 1.2.3 target must
    catch (DT_RELR), and a 1.2.3 loader fails wheels the default profile accepts."""
    if runtime_target.name == wanted.name:
        return True
    own, other = runtime_target.policy_platform, wanted.policy_platform
    if own is None or other is None:
        return False
    return other.runs_on(own) and runtime_target.musl_version == wanted.musl_version


def glibc_targets(arch: str, glibc: tuple[int, int]) -> tuple[str, ...]:
    """The manylinux targets of `arch` a glibc of version `glibc` loads: every policy level up to its own (a
    runtime on glibc 2.36 hosts manylinux_2_28 wheels as well as manylinux2014 ones)."""
    hosted = []
    for target in catalogue().values():
        own = target.policy_platform
        if own and own.libc == "glibc" and own.arch == arch and own.level <= glibc and not target.channel:
            hosted.append(target.name)
    return tuple(hosted)
