"""What a source distribution needs beyond a C compiler, found by reading it (no build attempted).

The zig backend compiles C through setuptools. A package that needs Rust, Fortran, C++ or a build system
other than setuptools would fail deep inside a compiler or a backend with a page of output; this module
recognises those cases from the sdist's file list and its build configuration, so the user gets one line
saying what is missing (and `--backend auto` can pick another backend).
"""

from __future__ import annotations

import re
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pipeline import toml

# Folders whose files never reach the compiled extension (an sdist often ships C++ or Fortran test helpers).
_NOT_BUILT = re.compile(
    r"(^|/)(tests?|testing|docs?|examples?|benchmarks?|bench|ci|tools|\.github)(/|$)", re.I
)
_CONFIG_FILES = ("pyproject.toml", "setup.py", "setup.cfg", "meson.build", "CMakeLists.txt")
_CXX = (".cpp", ".cc", ".cxx", ".c++")
_FORTRAN = (".f", ".f77", ".f90", ".f95", ".f03", ".for")
_MAX_CONFIG_BYTES = 1 << 20


@dataclass
class SourceListing:
    """The member names of an sdist (relative to its top folder) and the text of its top-level build files."""

    names: list[str] = field(default_factory=list)
    config: dict[str, str] = field(default_factory=dict)


def _strip_top(name: str) -> str:
    parts = PurePosixPath(name).parts
    return "/".join(parts[1:]) if len(parts) > 1 else ""


def list_source(path: Path) -> SourceListing:
    """Read an sdist archive (tar/zip) or an unpacked source tree without extracting anything."""
    listing = SourceListing()
    if path.is_dir():
        for file in path.rglob("*"):
            if file.is_file():
                relative = file.relative_to(path).as_posix()
                listing.names.append(relative)
                if relative in _CONFIG_FILES and file.stat().st_size <= _MAX_CONFIG_BYTES:
                    listing.config[relative] = file.read_text(encoding="utf-8", errors="replace")
        return listing
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                relative = _strip_top(info.filename)
                if not relative or info.is_dir():
                    continue
                listing.names.append(relative)
                if relative in _CONFIG_FILES and info.file_size <= _MAX_CONFIG_BYTES:
                    listing.config[relative] = archive.read(info).decode("utf-8", errors="replace")
        return listing
    with tarfile.open(path) as archive:
        for member in archive:
            relative = _strip_top(member.name)
            if not relative or not member.isreg():
                continue
            listing.names.append(relative)
            if relative in _CONFIG_FILES and member.size <= _MAX_CONFIG_BYTES:
                stream = archive.extractfile(member)
                if stream is not None:
                    listing.config[relative] = stream.read().decode("utf-8", errors="replace")
    return listing


def _build_backend(listing: SourceListing) -> str:
    text = listing.config.get("pyproject.toml")
    if not text:
        return "setuptools.build_meta:__legacy__"
    try:
        data = toml.loads(text)
    except Exception:
        return "unknown"
    system = data.get("build-system", {})
    backend = system.get("build-backend")
    if backend and system.get("backend-path") and _requires_only_setuptools(system.get("requires")):
        # An in-tree backend (PEP 517 backend-path, e.g. Pillow's _custom_build/backend.py) whose only build
        # requirements are setuptools (+ wheel) can only be a wrapper around setuptools.build_meta.
        return f"setuptools (in-tree wrapper {backend!s})"
    return str(backend) if backend else "setuptools.build_meta:__legacy__"


def _requires_only_setuptools(requires: object) -> bool:
    if not isinstance(requires, list) or not requires:
        return False
    names = {re.split(r"[<>=!~;\[ ]", str(r), maxsplit=1)[0].strip().lower() for r in requires}
    return "setuptools" in names and names <= {"setuptools", "wheel"}


def build_requirements(listing: SourceListing) -> list[str]:
    """PEP 518 build requirements (setuptools + wheel when the sdist declares none)."""
    text = listing.config.get("pyproject.toml")
    if text:
        try:
            requires = toml.loads(text).get("build-system", {}).get("requires")
        except Exception:
            requires = None
        if isinstance(requires, list):
            return [str(r) for r in requires]
    return ["setuptools>=40.8.0", "wheel"]


def cross_build_obstacle(listing: SourceListing, *, musl: bool) -> str | None:
    """None when the zig backend can build this source; otherwise one line naming what it needs."""
    built = [n for n in listing.names if not _NOT_BUILT.search(n)]
    settings = " ".join(listing.config.get(n, "") for n in ("pyproject.toml", "setup.py", "setup.cfg"))
    backend = _build_backend(listing)
    if (
        backend.startswith("maturin")
        or re.search(r"setuptools[-_]rust", settings)
        or any(PurePosixPath(n).name == "Cargo.toml" for n in built)
    ):
        return (
            "needs a Rust toolchain (Cargo.toml / maturin / setuptools-rust); the zig backend compiles C only"
        )
    fortran = [n for n in built if n.lower().endswith(_FORTRAN)]
    if fortran or re.search(r"project\([^)]*fortran", listing.config.get("meson.build", ""), re.I):
        example = f" ({fortran[0]})" if fortran else ""
        return f"needs a Fortran compiler{example}; the zig backend compiles C only"
    if not backend.startswith("setuptools"):
        return f"uses the build backend {backend!r}; the zig backend drives setuptools builds only"
    cxx = [n for n in built if n.lower().endswith(_CXX)]
    # `Extension(..., language="c++")`; not `ext.language = "c++"`, an attribute set on some optional path
    # (Pillow's setup.py does it only for its fuzzing build).
    if musl and (cxx or re.search(r"(?<![.\w])language\s*=\s*['\"]c\+\+['\"]", settings)):
        example = f" ({cxx[0]})" if cxx else ""
        return (
            f"has a C++ extension{example}; musl targets have no libstdc++ for it to link, and zig would embed "
            "its own libc++: use the cibuildwheel backend"
        )
    return None
