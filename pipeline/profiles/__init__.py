"""Runtime profiles: what the loader on a target provides, as data with provenance.

- glibc (manylinux): auditwheel's installed policy data (symbol versions and allowed libraries), read at run
  time from the auditwheel package's own JSON file (never copied here), without importing auditwheel.
- musl: per musl version, the exported names of a real musl libc.so (data/musl_1_2_5.json.gz,
  data/musl_1_2_3.json.gz; which versions and why: resources/musl-profiles.toml).
- CPython: the names each libpython 3.X exports (data/cpython.json.gz); the stable ABI (abi3) comes from
  the abi3info package at run time.
- Windows: per edition, each DLL present and the functions it exports (data/windows_*.json.gz).

Every data file has a provenance file next to it (<name>.provenance.json) saying where the names came from
and which command regenerates it (`rewheel profiles regenerate NAME`).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pipeline.errors import RewheelError
from pipeline.targets.musl import musl_profiles

DATA_DIR = Path(__file__).resolve().parent / "data"

# Names of the committed, regenerable profile data files (without .json.gz).
GENERATED_PROFILES = (
    *musl_profiles(),
    "cpython",
    "windows_desktop_amd64",
    "windows_servercore_amd64",
    "windows_nanoserver_amd64",
    "windows_desktop_arm64",
    "windows_desktop_x86",
)


class ProfileError(RewheelError):
    """A profile is missing or unreadable."""


def data_path(name: str) -> Path:
    return DATA_DIR / f"{name}.json.gz"


def provenance_path(name: str) -> Path:
    return DATA_DIR / f"{name}.provenance.json"


@cache
def load_data(name: str) -> dict[str, Any]:
    path = data_path(name)
    if not path.is_file():
        raise ProfileError(
            f"profile data {name!r} not found at {path}; run `rewheel profiles regenerate {name}`"
        )
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data


def load_provenance(name: str) -> dict[str, Any]:
    path = provenance_path(name)
    if not path.is_file():
        return {}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def write_data(
    name: str, data: dict[str, Any], provenance: dict[str, Any], directory: Path | None = None
) -> Path:
    """Write a profile reproducibly: sorted keys, gzip without a timestamp, so regeneration is byte-stable."""
    import hashlib

    directory = directory or DATA_DIR
    directory.mkdir(parents=True, exist_ok=True)
    payload = json.dumps(data, sort_keys=True, separators=(",", ":")).encode("utf-8")
    compressed = gzip.compress(payload, compresslevel=9, mtime=0)
    target = directory / f"{name}.json.gz"
    target.write_bytes(compressed)
    provenance = {**provenance, "name": name, "data_sha256": hashlib.sha256(payload).hexdigest()}
    (directory / f"{name}.provenance.json").write_text(
        json.dumps(provenance, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    load_data.cache_clear()
    return target


# ---- glibc (manylinux) policies: auditwheel's data, read in place -------------------------------------


def _auditwheel_policy_file(filename: str) -> Path:
    spec = importlib.util.find_spec("auditwheel")
    if spec is None or not spec.submodule_search_locations:
        raise ProfileError("auditwheel is not installed; it provides the manylinux/musllinux policy data")
    path = Path(next(iter(spec.submodule_search_locations))) / "policy" / filename
    if not path.is_file():
        raise ProfileError(f"auditwheel's policy data {filename} not found at {path}")
    return path


@dataclass(frozen=True)
class LinuxPolicy:
    name: str  # manylinux_2_17, musllinux_1_2
    arch: str
    allowed_libraries: frozenset[str]
    symbol_versions: dict[str, frozenset[str]]  # "GLIBC" -> {"2.2.5", ..., "2.17"}
    source: str = ""


@cache
def _policy_entries(filename: str) -> tuple[dict[str, Any], ...]:
    path = _auditwheel_policy_file(filename)
    return tuple(json.loads(path.read_text(encoding="utf-8")))


def linux_policies() -> list[dict[str, Any]]:
    """Every manylinux_2_N and musllinux_1_N entry of auditwheel's installed policies (not "linux")."""
    entries = [*_policy_entries("manylinux-policy.json"), *_policy_entries("musllinux-policy.json")]
    return [e for e in entries if e["name"].startswith(("manylinux_", "musllinux_"))]


@cache
def linux_policy(policy: str, arch: str) -> LinuxPolicy:
    """A manylinux/musllinux policy from auditwheel's installed JSON (by name or alias)."""
    filename = "musllinux-policy.json" if policy.startswith("musllinux") else "manylinux-policy.json"
    path = _auditwheel_policy_file(filename)
    for entry in _policy_entries(filename):
        if policy == entry["name"] or policy in entry.get("aliases", []):
            versions = entry["symbol_versions"].get(arch)
            if versions is None:
                raise ProfileError(f"auditwheel's policy {policy} has no data for {arch}")
            return LinuxPolicy(
                name=entry["name"],
                arch=arch,
                allowed_libraries=frozenset(entry["lib_whitelist"]),
                symbol_versions={prefix: frozenset(v) for prefix, v in versions.items()},
                source=str(path),
            )
    raise ProfileError(f"auditwheel has no policy named {policy}")


# ---- musl -------------------------------------------------------------------------------------------------


@cache
def musl_exports(profile: str, arch: str) -> frozenset[str]:
    """Names the libc.so of a musl profile ("musl_1_2_5", one per musl version) exports. Within a version one
    list serves every arch: musl's exported names are the same on x86_64 and aarch64 except a few
    arch-specific ones, which the profile records separately."""
    data = load_data(profile)
    names = set(data["exports"])
    names.update(data.get("arch_specific", {}).get(arch, []))
    return frozenset(names)


# ---- CPython --------------------------------------------------------------------------------------------


@cache
def cpython_exports(version: str) -> frozenset[str] | None:
    """Names libpython `version` ("3.11") exports, or None when the profile does not know that version."""
    versions = load_data("cpython")["versions"]
    names = versions.get(version)
    return frozenset(names) if names is not None else None


@cache
def cpython_windows_exports(version: str) -> frozenset[str] | None:
    """Names the official python3X.dll of `version` exports, or None when the profile has no such DLL."""
    names = load_data("cpython").get("windows", {}).get(version)
    return frozenset(names) if names is not None else None


@cache
def stable_abi(minimum: str) -> frozenset[str]:
    """Stable-ABI (abi3) symbol names available in CPython `minimum` ("3.7"), from abi3info."""
    import abi3info
    from abi3info.models import PyVersion

    floor = PyVersion.parse_dotted(minimum)
    names = {symbol.name for symbol, item in abi3info.FUNCTIONS.items() if item.added <= floor}
    names.update(symbol.name for symbol, item in abi3info.DATAS.items() if item.added <= floor)
    return frozenset(names)


@cache
def windows_only_python_names() -> frozenset[str]:
    """Python C-API names that exist only on Windows (PyErr_SetFromWindowsErr, the MBCS codecs, and data
    such as PyExc_WindowsError): a Linux libpython cannot list them, abi3info marks them with the MS_WINDOWS
    feature macro (functions and data entries both), and the real python3X.dll exports, where the cpython
    profile has them (`windows` key), add the rest."""
    import abi3info

    names = {
        s.name
        for table in (abi3info.FUNCTIONS, abi3info.DATAS)
        for s, item in table.items()
        if item.ifdef is not None and getattr(item.ifdef, "name", item.ifdef) == "MS_WINDOWS"
    }
    names.update(load_data("cpython").get("windows_only", []))
    return frozenset(names)


# ---- Windows ----------------------------------------------------------------------------------------------


@dataclass
class WindowsProfile:
    name: str
    dlls: dict[str, frozenset[str]]  # lower-case DLL name -> exported function names
    ordinals: dict[str, dict[int, str]] = field(default_factory=dict)
    forwarders: dict[str, dict[str, str]] = field(default_factory=dict)  # dll -> name -> "target.dll!name"

    def has_dll(self, dll: str) -> bool:
        return self.resolve_dll(dll) is not None

    def resolve_dll(self, dll: str) -> str | None:
        """The profile's key for `dll`: exact, or for an API-set name the same contract at a higher or
        equal revision (the loader accepts a host that implements a newer revision of a contract)."""
        key = dll.lower()
        if key in self.dlls:
            return key
        wanted = _API_SET.match(key)
        if not wanted:
            return None
        best: tuple[tuple[int, int], str] | None = None
        for other in self.dlls:
            found = _API_SET.match(other)
            if found and found["contract"] == wanted["contract"]:
                revision = (int(found["major"]), int(found["minor"]))
                if revision >= (int(wanted["major"]), int(wanted["minor"])) and (
                    best is None or revision > best[0]
                ):
                    best = (revision, other)
        return best[1] if best else None


_API_SET = re.compile(r"^(?P<contract>(?:api|ext)-ms-win-.+-l\d+)-(?P<major>\d+)-(?P<minor>\d+)\.dll$")


@cache
def windows_profile(name: str) -> WindowsProfile:
    data = load_data(name)
    if "alias_of" in data:
        return windows_profile(data["alias_of"])
    dlls = {dll: frozenset(names) for dll, names in data["dlls"].items()}
    ordinals = {dll: {int(k): v for k, v in table.items()} for dll, table in data.get("ordinals", {}).items()}
    return WindowsProfile(name=name, dlls=dlls, ordinals=ordinals, forwarders=data.get("forwarders", {}))


# ---- listing --------------------------------------------------------------------------------------------


def list_profiles() -> list[dict[str, Any]]:
    """Every profile rewheel knows, with where its data comes from."""
    from pipeline.targets import catalogue

    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for target in catalogue().values():
        if target.profile in seen or target.profile == "none":
            continue
        seen.add(target.profile)
        users = [t.name for t in catalogue().values() if t.profile == target.profile]
        if target.libc == "glibc":
            try:
                source = str(_auditwheel_policy_file("manylinux-policy.json"))
            except ProfileError as exc:
                source = f"unavailable: {exc}"
            rows.append(
                {
                    "name": target.profile,
                    "kind": "glibc-policy",
                    "targets": users,
                    "source": f"auditwheel's installed policy data ({source}), policy {target.policy}",
                    "regenerate": "pip install -U auditwheel (read at run time, nothing to regenerate)",
                }
            )
            continue
        rows.append(_generated_row(target.profile, users))
    rows.append(_generated_row("cpython", ["every cpXY wheel"]))
    rows.append(
        {
            "name": "abi3",
            "kind": "stable-abi",
            "targets": ["every abi3 wheel"],
            "source": "the abi3info package's stable ABI data (installed), read at run time",
            "regenerate": "pip install -U abi3info",
        }
    )
    return rows


def _generated_row(name: str, users: list[str]) -> dict[str, Any]:
    provenance = load_provenance(name)
    return {
        "name": name,
        "kind": provenance.get("kind", "unknown"),
        "targets": users,
        "source": provenance.get("source", "missing provenance file"),
        "regenerate": provenance.get("regenerate", f"rewheel profiles regenerate {name}"),
        "present": data_path(name).is_file(),
        "provenance": provenance,
    }
