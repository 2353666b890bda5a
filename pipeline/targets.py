"""The target catalogue: which platforms rewheel builds for and what their loaders provide.

The catalogue is data. Linux targets come from auditwheel's policy data (one target per manylinux_2_N /
musllinux_1_N level and per architecture the policy knows, among LINUX_ARCHES), read at run time from the
installed auditwheel, so a new auditwheel brings its new levels; cibuildwheel's pinned image list says which of
them cibuildwheel can build (`cibw_image`). resources/targets.toml holds everything that is not in those:
the Windows editions, `any`, and per-name overrides of the generated Linux entries (which keep their fields).
"""

from __future__ import annotations

import fnmatch
import re
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

    @property
    def musl_baseline(self) -> tuple[int, int, int] | None:
        """The oldest musl a musllinux_X_Y target promises: X.Y.0 (PEP 656: the tag names musl's major and
        minor version, any patch release of it). None for other targets."""
        if not self.is_musl or not self.policy:
            return None
        _family, _, version = self.policy.partition("_")
        major, _, minor = version.partition("_")
        return (int(major), int(minor), 0)

    def compatible_platforms(self) -> list[str]:
        """The platform tags a wheel that loads on this target may carry, newest policy first (packaging's and
        pip's --platform order): musllinux_1_2 also takes 1_1 and 1_0; manylinux_2_17 takes every
        manylinux_2_N down to 2_5 with the PEP 513/571/599 aliases beside their levels. Other targets: their
        own tag."""
        found = re.fullmatch(r"(many|musl)linux_(\d+)_(\d+)", self.policy or "") if self.is_linux else None
        if not found:
            return [self.platform_tag]
        family, major, minor = found[1], int(found[2]), int(found[3])
        if family == "musl":
            return [f"musllinux_{major}_{m}_{self.arch}" for m in range(minor, -1, -1)]
        platforms = []
        for m in range(minor, 4, -1):
            platforms.append(f"manylinux_{major}_{m}_{self.arch}")
            legacy = _MANYLINUX_ALIASES.get((major, m))
            if legacy:
                platforms.append(f"{legacy}_{self.arch}")
        return platforms

    def build_identifier(self, python: str) -> str:
        """cibuildwheel's identifier for this target and a Python version such as "3.11"."""
        return f"{python_tag(python)}-{self.cibw_identifier}"

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["legacy_tags"] = list(self.legacy_tags)
        return data


_MANYLINUX_ALIASES = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}


def python_tag(version: str) -> str:
    """ "3.11" -> "cp311" (rewheel builds CPython wheels)."""
    major, _, minor = version.partition(".")
    return f"cp{major}{minor}"


# Architectures rewheel offers Linux targets for (where the policy has them): the ones cibuildwheel builds.
LINUX_ARCHES = ("x86_64", "aarch64", "i686", "ppc64le", "s390x", "armv7l")
# cibuildwheel names the manylinux_2_17 image by its PEP 599 alias.
_IMAGE_POLICY = {
    "manylinux2014": "manylinux_2_17",
    "manylinux2010": "manylinux_2_12",
    "manylinux1": "manylinux_2_5",
}


def _policy_key(policy: str) -> tuple[int, int, int]:
    family, _, version = policy.partition("_")
    major, _, minor = version.partition("_")
    return (0 if family == "manylinux" else 1, int(major), int(minor))


@cache
def cibuildwheel_images() -> dict[tuple[str, str], str]:
    """(policy, arch) -> cibuildwheel's image option, from cibuildwheel's own pinned image list."""
    import configparser

    try:
        text = resources.files("cibuildwheel").joinpath("resources/pinned_docker_images.cfg").read_text()
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        return {}
    parser = configparser.ConfigParser(inline_comment_prefixes=("#",))
    parser.read_string(text)
    images = {}
    for arch in parser.sections():
        for image in parser[arch]:
            images[(_IMAGE_POLICY.get(image, image), arch)] = image
    return images


def policy_targets() -> list[Target]:
    """One target per (policy level, arch) in auditwheel's manylinux and musllinux policies, oldest first."""
    from pipeline.profiles import linux_policies

    images = cibuildwheel_images()
    targets = []
    for entry in sorted(linux_policies(), key=lambda e: _policy_key(e["name"])):
        policy = entry["name"]
        family = policy.partition("_")[0]
        musl = family == "musllinux"
        for arch in LINUX_ARCHES:
            if arch not in entry["symbol_versions"]:
                continue
            targets.append(
                Target(
                    name=f"{policy}_{arch}",
                    platform_tag=f"{policy}_{arch}",
                    legacy_tags=tuple(f"{alias}_{arch}" for alias in entry.get("aliases", ())),
                    os="linux",
                    arch=arch,
                    libc="musl" if musl else "glibc",
                    policy=policy,
                    # musl: one export list serves every musllinux level (see pipeline/profiles)
                    profile="musl_1_2" if musl else f"{policy}_{arch}",
                    cibw_platform="linux",
                    cibw_arch=arch,
                    cibw_identifier=f"{family}_{arch}",
                    cibw_image=images.get((policy, arch)),
                )
            )
    return targets


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
