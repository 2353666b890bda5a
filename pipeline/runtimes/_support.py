"""Shared machinery for runtimes built here: pinned Debian inputs, logged build steps, finished-build markers.

Debian inputs come through apt itself (`apt-get source --download-only`, `apt-get download`), so whatever
mirror or proxy the machine's apt uses applies, and no host name lives in rewheel. Every file is checked
against its pinned sha256 and then kept in the same content-addressed cache as pipeline.fetch uses, so a
second build never asks apt again.
"""

from __future__ import annotations

import abc
import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import FetchError, HashMismatch, RewheelError
from pipeline.fetch import Pin, cached_path
from pipeline.log import log
from pipeline.paths import runtimes_root
from pipeline.system_packages import can_install
from pipeline.util import error_line, sha256_file

MARKER = "rewheel-runtime.json"
DEB_SRC_LIST = Path("/etc/apt/sources.list.d/rewheel-deb-src.sources")
APT_TIMEOUT = ["-o", "DPkg::Lock::Timeout=900"]


class RuntimeBuildError(RewheelError):
    """A runtime could not be built; the message names the step and its log file."""


@dataclass(frozen=True)
class RuntimeLimit:
    """Something the real target has and this runtime lacks, with nothing reachable to supply it (the
    embeddable CPython's tkinter, wine's stub of ucrtbase's crealf). A failure whose output matches `pattern`
    is the runtime's limit, not the wheel's defect: smoke reports it as cannot-host naming `missing`."""

    missing: str  # what is missing, named for people: "tkinter", "ucrtbase.crealf"
    pattern: str  # a regular expression searched in the failure's output
    reason: str  # why it is missing and what would supply it

    def matches(self, output: str) -> bool:
        return re.search(self.pattern, output) is not None


def limits_from_data(entries: Sequence[Mapping[str, str]], where: str) -> tuple[RuntimeLimit, ...]:
    """A runtime entry's `limits = [{ missing, pattern, reason }, ...]`; a malformed one is a data error."""
    found = []
    for item in entries:
        try:
            limit = RuntimeLimit(missing=item["missing"], pattern=item["pattern"], reason=item["reason"])
            re.compile(limit.pattern)
        except (KeyError, TypeError, re.error) as exc:
            raise RewheelError(
                f"{where}: a limit needs missing, pattern (a regular expression), reason: {exc}"
            ) from None
        found.append(limit)
    return tuple(found)


def matching_limit(limits: Sequence[RuntimeLimit], output: str) -> RuntimeLimit | None:
    """The first limit a failure's output shows, or None (then the failure is the wheel's)."""
    return next((limit for limit in limits if limit.matches(output)), None)


@dataclass(frozen=True)
class DebianFile:
    """One file from Debian's archive, pinned: a source package's orig tarball or a binary .deb."""

    package: str  # source package (for orig tarballs) or binary package, e.g. "libffi8:arm64"
    filename: str
    sha256: str
    version: str | None = None  # binary packages: the exact version apt must fetch
    # The Debian suite it comes from. bookworm (the machine's own suite) goes through the machine's apt
    # lists; any other suite (trixie for CPython 3.13) through private lists rewheel keeps in its cache.
    suite: str = "bookworm"

    def pin(self) -> Pin:
        return Pin(filename=self.filename, sha256=self.sha256)


def cache_downloads() -> Path:
    from pipeline.paths import downloads_cache

    return downloads_cache()


def _store(found: Path, item: DebianFile) -> Path:
    actual = sha256_file(found)
    if actual != item.sha256:
        raise HashMismatch(f"{item.filename} (Debian package {item.package})", item.sha256, actual)
    target = cached_path(item.pin(), cache_downloads())
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(found), target)
    return target


def _apt(args: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["apt-get", *APT_TIMEOUT, *args], cwd=cwd, capture_output=True, text=True, env=env)


def ensure_deb_src() -> None:
    """Give apt a deb-src entry for bookworm, copied from the machine's own deb entries (same mirror)."""
    if DEB_SRC_LIST.exists():
        return
    if not can_install():
        raise RuntimeBuildError(
            "fetching Debian sources needs a deb-src entry in apt's sources and root to add it; run as root"
        )
    stanzas = []
    for sources in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for stanza in sources.read_text(encoding="utf-8").split("\n\n"):
            fields = dict(
                line.split(":", 1) for line in stanza.splitlines() if ":" in line and not line.startswith("#")
            )
            types = fields.get("Types", "").split()
            suites = fields.get("Suites", "").split()
            if "deb" in types and "bookworm" in suites:
                lines = ["Types: deb-src", f"URIs:{fields['URIs']}", "Suites: bookworm"]
                lines += [f"{key}:{fields[key]}" for key in ("Components", "Signed-By") if key in fields]
                stanzas.append("\n".join(lines))
    if not stanzas:
        raise RuntimeBuildError("no deb822 'deb' entry for bookworm under /etc/apt/sources.list.d to copy")
    DEB_SRC_LIST.write_text("\n\n".join(stanzas) + "\n", encoding="utf-8")
    _apt_update()


def _apt_update() -> None:
    result = _apt(["update", "-q"], Path("/"))
    if result.returncode != 0:
        last = error_line(result.stderr, default="apt-get update failed")
        raise RuntimeBuildError(f"apt-get update failed: {last}")


def _machine_mirror() -> tuple[str, str | None]:
    """(URI, Signed-By) of the machine's own Debian mirror: the `deb` entry for its main suite."""
    for sources in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for stanza in sources.read_text(encoding="utf-8").split("\n\n"):
            fields = dict(
                line.split(":", 1) for line in stanza.splitlines() if ":" in line and not line.startswith("#")
            )
            if "deb" in fields.get("Types", "").split() and "bookworm" in fields.get("Suites", "").split():
                signed_by = fields.get("Signed-By")
                return fields["URIs"].split()[0], signed_by.strip() if signed_by else None
    raise RuntimeBuildError("no deb822 'deb' entry for bookworm under /etc/apt/sources.list.d to copy")


# A run builds runtimes in several threads (one per architecture): apt's private lists must not be updated by
# two at once, and two threads wanting the same tarball should fetch it once. Re-entrant: a fetch asks for its
# suite's lists under the same lock.
_APT_FETCH = threading.RLock()


def suite_apt_options(suite: str) -> list[str]:
    """apt options selecting private lists for another Debian suite (sources; amd64, arm64 and armhf binaries).

    The machine's own apt configuration is left alone: mixing suites there would let an upgrade pull in
    trixie packages. The lists live under <cache>/apt/<suite>/ and are refreshed once a day."""
    with _APT_FETCH:
        return _suite_apt_options(suite)


def _suite_apt_options(suite: str) -> list[str]:
    from pipeline.paths import cache_root

    # amd64, arm64 and armhf binaries (another suite's musl loader for each), in a folder of its own: the lists
    # of older checkouts sharing this cache (fewer architectures) stay as they are, so none keeps rewriting
    # another's.
    base = cache_root() / "apt" / f"{suite}-amd64-arm64-armhf"
    lists = base / "lists"
    (lists / "partial").mkdir(parents=True, exist_ok=True)
    uri, signed_by = _machine_mirror()
    sign = f" signed-by={signed_by}" if signed_by else ""
    source_list = base / "sources.list"
    wanted = f"deb-src [{sign.strip()}] {uri} {suite} main\ndeb [arch=amd64,arm64,armhf{sign}] {uri} {suite} main\n"
    wanted = wanted.replace("[]", "")
    options = [
        "-o", f"Dir::Etc::SourceList={source_list}", "-o", "Dir::Etc::SourceParts=-",
        "-o", f"Dir::State::Lists={lists}", "-o", "APT::Architectures::=amd64", "-o", "APT::Architectures::=arm64",
        "-o", "APT::Architectures::=armhf",
    ]  # fmt: skip
    stamp = base / "updated"
    fresh = stamp.is_file() and time.time() - stamp.stat().st_mtime < 86400
    if source_list.is_file() and source_list.read_text(encoding="utf-8") == wanted and fresh:
        return options
    source_list.write_text(wanted, encoding="utf-8")
    log.say(f"runtimes: apt-get update (private lists for Debian {suite})")
    result = _apt([*options, "update", "-q"], Path("/"))
    if result.returncode != 0:
        last = error_line(result.stderr, default="apt-get update failed")
        raise RuntimeBuildError(f"apt-get update for Debian {suite} failed: {last}")
    stamp.touch()
    return options


def debian_source_orig(item: DebianFile) -> Path:
    """The pinned orig tarball of a Debian source package (from the cache, or via apt-get source)."""
    cached = cached_path(item.pin(), cache_downloads())
    if cached.is_file():
        return cached
    with _APT_FETCH:
        if cached.is_file():  # another thread fetched it while this one waited
            return cached
        return _debian_source_orig(item)


def _debian_source_orig(item: DebianFile) -> Path:
    if item.suite == "bookworm":
        options: list[str] = []
        ensure_deb_src()
    else:
        options = suite_apt_options(item.suite)
    spec = f"{item.package}={item.version}" if item.version else item.package
    log.say(f"runtimes: apt-get source --download-only {spec} ({item.suite})")
    with tempfile.TemporaryDirectory(prefix="rewheel-debsrc-") as tmp:
        result = _apt([*options, "source", "--download-only", "-q", spec], Path(tmp))
        if result.returncode != 0 and "deb-src" in result.stderr and not options:
            # The entry exists but apt's lists carry no source index (another apt-get update replaced them,
            # or a fresh machine's lists are empty): refresh once and retry.
            _apt_update()
            result = _apt(["source", "--download-only", "-q", spec], Path(tmp))
        found = Path(tmp) / item.filename
        # Debian's own diff files can be missing from a mirror; only the orig tarball matters here.
        if not found.is_file():
            last = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
            raise FetchError(f"apt-get source {item.package} did not provide {item.filename}: {last}")
        return _store(found, item)


def debian_binaries(items: Sequence[DebianFile]) -> list[Path]:
    """Pinned .debs of exact versions (from the cache, or all missing ones in one `apt-get download`)."""
    with _APT_FETCH:
        return _debian_binaries(items)


def _debian_binaries(items: Sequence[DebianFile]) -> list[Path]:
    missing = [item for item in items if not cached_path(item.pin(), cache_downloads()).is_file()]
    suites = {item.suite for item in missing}
    if len(suites) > 1:
        raise RuntimeBuildError(f"one download takes packages of one suite, not {', '.join(sorted(suites))}")
    options = [] if suites <= {"bookworm"} else suite_apt_options(suites.pop())
    if missing:
        for arch in sorted({item.package.partition(":")[2] for item in missing} - {""}):
            if arch not in _foreign_architectures():
                if not can_install():
                    raise RuntimeBuildError(
                        f"dpkg lacks architecture {arch}: run `dpkg --add-architecture {arch}` as root"
                    )
                subprocess.run(["dpkg", "--add-architecture", arch], check=True)
                _apt_update()
        specs = [f"{item.package}={item.version}" for item in missing]
        log.say(f"runtimes: apt-get download {len(specs)} packages ({', '.join(specs[:3])}, ...)")
        with tempfile.TemporaryDirectory(prefix="rewheel-deb-") as tmp:
            result = _apt([*options, "download", "-q", *specs], Path(tmp))
            if result.returncode != 0 and "Unable to locate" in result.stderr and not options:
                _apt_update()  # stale lists on a fresh machine: refresh once and retry
                result = _apt(["download", "-q", *specs], Path(tmp))
            if result.returncode != 0:
                last = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
                raise FetchError(
                    f"apt-get download failed: {last} (Debian keeps only current versions; "
                    "update the pin in rewheel when a security update replaced one)"
                )
            for item in missing:
                found = Path(tmp) / item.filename
                if not found.is_file():
                    raise FetchError(
                        f"apt-get download {item.package}={item.version} gave no {item.filename}"
                    )
                _store(found, item)
    return [cached_path(item.pin(), cache_downloads()) for item in items]


def _foreign_architectures() -> set[str]:
    result = subprocess.run(["dpkg", "--print-foreign-architectures"], capture_output=True, text=True)
    return set(result.stdout.split())


class StepRunner:
    """Runs build steps with their output in one log file; a failure names the step and shows the log's tail."""

    def __init__(self, runtime: str, log: Path) -> None:
        self.runtime = runtime
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)

    def run(
        self, step: str, command: Sequence[str | Path], *, cwd: Path, env: Mapping[str, str] | None = None
    ) -> None:
        log.say(f"{self.runtime}: {step} ...")
        full_env = {**os.environ, **(env or {})}
        with log.step(self.runtime, step):
            with self.log.open("a", encoding="utf-8") as out:
                out.write(f"\n### {step}: {' '.join(map(str, command))}\n")
                out.flush()
                result = subprocess.run(
                    [str(c) for c in command], cwd=cwd, env=full_env, stdout=out, stderr=subprocess.STDOUT
                )
            if result.returncode != 0:
                tail = self.log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
                raise RuntimeBuildError(
                    f"{self.runtime}: {step} failed (exit {result.returncode}); log {self.log}: {' | '.join(tail)}"
                )


def write_marker(root: Path, data: dict[str, object]) -> None:
    (root / MARKER).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def read_marker(root: Path) -> dict[str, object] | None:
    try:
        data = json.loads((root / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def publish_dir(staging: Path, final: Path) -> None:
    """Move a finished build into place in one rename, so a half-built runtime is never taken for done."""
    if final.exists():
        shutil.rmtree(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, final)


def tree_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            file = Path(dirpath) / name
            if not file.is_symlink():
                total += file.stat().st_size
    return total


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text)


# Runtimes this process waited for while another process held their build lock (so `runtimes build` does not
# claim it built them).
_WAITED_FOR: set[str] = set()


def waited_for_another_build(name: str) -> bool:
    """True when this process found NAME's build lock held and waited for another process's build."""
    return name in _WAITED_FOR


@contextmanager
def build_lock(name: str) -> Iterator[None]:
    """One builder per runtime at a time, across processes (parallel test sessions share the cache).

    Callers re-check `exists()` once they hold the lock: the other process may have finished the build."""
    from pipeline.paths import runtimes_root

    locks = runtimes_root() / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    with (locks / f"{name}.lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.say(
                f"{name}: another build of it is running (another process, or this run's background builder); waiting for it"
            )
            _WAITED_FOR.add(name)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_shared_once(name: str, exists: Callable[[], bool], build: Callable[[], None]) -> None:
    """A shared build (musl deps, libz) made once: taken from the configured runtime source when it holds it,
    else built under its lock (another process may finish it meanwhile: checked again inside)."""
    if exists():
        return
    from pipeline.runtimes.sources import take_from_source

    if take_from_source(name) and exists():
        return
    with build_lock(name):
        if not exists():
            build()


class CachedInterpreter(abc.ABC):
    """What the interpreter runtimes share: a folder under the runtimes cache, a marker saying a build of this
    recipe revision finished, and a build that runs once under a lock (parallel tests and nox sessions ask for
    the same runtime at the same time, and two builds in one folder corrupt each other)."""

    name: str
    python_version: str
    revision: int  # bump when the build recipe changes: builds of older revisions stop counting as existing

    def root(self) -> Path:
        return runtimes_root() / self.name

    def python(self) -> Path:
        """The interpreter to run (for emulated runtimes, a host-runnable wrapper that starts qemu-user)."""
        return self.root() / "bin" / f"python{self.python_version}"

    def command(self) -> list[str]:
        return [str(self.python())]

    def limits(self) -> list[RuntimeLimit]:
        """What this runtime lacks that its targets have (data: the entry's `limits`)."""
        return list(getattr(self, "_limits", ()))

    def prepare_site(self, site: Path) -> None:  # noqa: B027 (a hook: most runtimes import a site as it is)
        """Called by smoke once a wheel and its requirements are installed into `site` (a throwaway folder):
        a runtime that emulates a poorer target than it is removes there what that target lacks."""

    def sandbox_readable(self) -> list[Path]:
        """What smoke's sandbox binds back read-only for this interpreter: its root."""
        return [self.root()]

    def sandbox_scratch(self) -> list[Path]:
        """Nothing for most: a POSIX interpreter's temporary files go to TMPDIR, the sandbox's private /tmp."""
        return []

    def exists(self) -> bool:
        marker = read_marker(self.root())
        finished = bool(marker and marker.get("revision") == self.revision and self.python().is_file())
        return finished and self._still_usable(marker or {})

    def _still_usable(self, marker: dict[str, object]) -> bool:
        """Extra checks on a finished build (e.g. the host tool it runs with is still installed)."""
        return True

    @abc.abstractmethod
    def unavailable_reason(self) -> str | None:
        """None when this machine can build it; otherwise what is missing."""

    def _import_from_source(self) -> None:
        """Take the build from the configured runtime source (REWHEEL_RUNTIME_SOURCE), if one is set and
        holds this rewheel's build of it; otherwise it is built, after one line saying why."""
        from pipeline.runtimes.sources import take_from_source

        take_from_source(self.name)

    def _prepare(self) -> None:  # noqa: B027 (an optional hook: most runtimes need nothing)
        """Work done before taking this runtime's lock (inputs shared with other runtimes, with locks of their own)."""

    @abc.abstractmethod
    def _build(self) -> None:
        """Build into root() and write the marker last."""

    def build(self) -> None:
        if self.exists():
            return
        reason = self.unavailable_reason()
        if reason:
            raise RuntimeBuildError(f"{self.name}: {reason}")
        self._import_from_source()
        if self.exists():
            return
        self._prepare()
        with build_lock(self.name):
            if not self.exists():  # another process may have finished it while we waited for the lock
                self._build()
