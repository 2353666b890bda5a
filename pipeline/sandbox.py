"""A sandbox for code that comes from outside: smoke imports and test commands, package builds, metadata builds.

A wheel's module runs code on import, an sdist's setup.py runs code when built: none of it is rewheel's.
`run_sandboxed` runs such a command under Debian's bubblewrap (the `sandbox` toolset) with:

- its own user, mount, pid, network, ipc, uts and cgroup namespaces; uid/gid 65534 inside, every capability
  dropped, no further user namespaces, a new session (no terminal injection), killed with its parent;
- the host read-only, a private /tmp (size-bounded tmpfs), and out of sight: /etc/shadow and /etc/gshadow (an
  empty file over each), /root, /home, /run and /var/tmp (an empty tmpfs over each), so the user's ~/.pypirc,
  ~/.netrc, ~/.config/pip, keyrings and the sockets of root's daemons (podman, dbus) are not there. What the
  run needs from under those folders (a runtime in ~/.cache/rewheel, pyenv's interpreters, the wine prefix) is
  bound back on top, read-only, or writable when the caller lists it in `writable`;
- no network unless asked (a connect to 127.0.0.1 is refused: the loopback is the sandbox's own);
- an environment of what the caller passes, minus anything that looks like a credential (REWHEEL_*, TWINE_*,
  *_PASSWORD, *_TOKEN, AWS_*, ...), plus PATH/HOME/LANG defaults;
- limits: wall time (the whole process tree is killed and subprocess.TimeoutExpired raised), address space
  (RLIMIT_AS), file size (RLIMIT_FSIZE), processes (a pids cgroup when this machine lets rewheel make one;
  otherwise RLIMIT_NPROC, and when running as root, which RLIMIT_NPROC exempts, rewheel counts the sandbox's
  processes and stops it past the limit), and output: stdout and stderr are each kept up to `output_limit` bytes (its first
  and last halves); the rest is read and discarded, never buffered.

What this does not do (see README "Security model"): rewheel usually runs as root, and bubblewrap run by root
maps the sandbox's uid 65534 onto the real root. The process has no capabilities and sees a read-only host,
but a root-only file that is neither hidden nor behind a hidden folder (a host key under /etc, say) stays
readable to it. Writes to the `writable` folders are bounded per file, not in total.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import resource
import selectors
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pipeline.errors import MissingTool

TOOLSET = "sandbox"

# Folders an empty tmpfs hides: the users' homes (credentials, keyrings, pip/uv/twine config), root daemons'
# sockets (/run: a unix socket on a read-only mount still accepts a connect), shared scratch space.
HIDDEN_FOLDERS = (Path("/root"), Path("/home"), Path("/run"), Path("/var/tmp"))
# Files an empty file replaces: password hashes stay readable to the real root the sandbox maps onto.
HIDDEN_FILES = (Path("/etc/shadow"), Path("/etc/gshadow"), Path("/etc/shadow-"), Path("/etc/gshadow-"))

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_ENV = {"PATH": DEFAULT_PATH, "HOME": "/tmp", "LANG": "C.UTF-8"}

# Environment names never handed to sandboxed code, whatever the caller passes.
_SECRET_NAME = re.compile(
    r"^(REWHEEL_|TWINE_|AWS_|AZURE_|GOOGLE_|GCLOUD_|GH_|GITHUB_|ACTIONS_|CI_JOB_|PIP_|UV_|SSH_|GPG_|GNUPG)"
    r"|(PASSWORD|PASSWD|TOKEN|SECRET|CREDENTIAL|API_KEY|ACCESS_KEY|PRIVATE_KEY|_AUTH|NETRC)",
    re.IGNORECASE,
)

DEFAULT_FILE_SIZE = 2 << 30  # bytes one file may grow to (RLIMIT_FSIZE): a build's largest .so is far below
DEFAULT_PROCESSES = 512  # a parallel build runs dozens; a fork bomb runs thousands
TMP_SIZE = 512 << 20  # the private /tmp is memory: bounded
_CGROUP_PIDS = (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup"))


class SandboxUnavailable(MissingTool):
    """The sandbox tool (bubblewrap) is missing or cannot create its namespaces here."""


def _bwrap() -> str | None:
    return shutil.which("bwrap")


def _base_arguments() -> list[str]:
    return [
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--uid",
        "65534",
        "--gid",
        "65534",
        "--ro-bind",
        "/",
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--size",
        str(TMP_SIZE),
        "--tmpfs",
        "/tmp",
    ]


@functools.cache
def _probe() -> str | None:
    bwrap = _bwrap()
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed"
    probe = subprocess.run(
        [bwrap, *_base_arguments(), "--", "/bin/true"], capture_output=True, text=True, timeout=60
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or [f"exit status {probe.returncode}"])[-1]
        return f"bubblewrap cannot create its namespaces here: {last}"
    return None


def sandbox_available(install: bool = True) -> str | None:
    """None when the sandbox works on this machine; otherwise what is missing. Installs bubblewrap (the
    `sandbox` toolset) when allowed and `install`."""
    if _bwrap() is None and install:
        from pipeline.system_packages import ensure_toolset

        try:
            ensure_toolset(TOOLSET)
        except MissingTool as exc:
            return str(exc)
        _probe.cache_clear()
    return _probe()


def ensure_sandbox() -> str:
    """The bwrap executable, installed if need be; SandboxUnavailable when there is no working sandbox."""
    missing = sandbox_available()
    bwrap = _bwrap()
    if missing or bwrap is None:
        raise SandboxUnavailable(f"the sandbox for untrusted code is unavailable: {missing}")
    return bwrap


def clean_environment(env: Mapping[str, str] | None) -> dict[str, str]:
    """`env` without credentials, over the defaults (PATH, HOME, LANG)."""
    kept = {k: v for k, v in (env or {}).items() if not _SECRET_NAME.search(k)}
    return {**DEFAULT_ENV, **kept}


def paths_named_in(env: Mapping[str, str]) -> list[Path]:
    """Existing absolute paths an environment names that a hidden folder would cover (PATH entries, CC, -I/-L
    flags, PYTHONPATH, ...): what a build's tools need bound back into the sandbox, read-only."""
    found: dict[Path, None] = {}
    for key, value in env.items():
        if _SECRET_NAME.search(key):
            continue
        for word in re.split(r"[\s" + re.escape(os.pathsep) + r"]+", value):
            word = re.sub(r"^(-I|-L|-isystem|-iquote|--sysroot=|-B|-Wl,-rpath,)", "", word)
            if not word.startswith("/"):
                continue
            path = Path(word)
            try:
                exists = path.exists()
            except OSError:
                continue
            if exists and _hidden(path):
                found[path] = None
    return list(found)


def _under(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


_PRIVATE_ROOTS = (*HIDDEN_FOLDERS, Path("/tmp"))


def _hidden(path: Path) -> bool:
    return any(_under(path, folder) for folder in _PRIVATE_ROOTS)


def _binds(argv0: str, cwd: Path, readable: Sequence[Path], writable: Sequence[Path]) -> list[str]:
    """bind arguments for what the run needs: writable folders always (the host is read-only), readable ones
    only when a hidden folder covers them. Parents before children, so a writable folder inside a readable
    one stays writable."""
    wanted: dict[Path, bool] = {}  # path -> writable

    def add(path: Path, write: bool) -> None:
        for candidate in {Path(os.path.abspath(path)), path.resolve()}:
            if not candidate.exists():
                continue
            if candidate in _PRIVATE_ROOTS or candidate == Path("/"):
                # Binding /tmp or /root itself would undo the hiding: what is in there stays out of sight.
                if write:
                    raise ValueError(f"the sandbox cannot make {candidate} writable; name a folder inside it")
                continue
            if write or _hidden(candidate):
                wanted[candidate] = wanted.get(candidate, False) or write

    program = Path(argv0)
    if program.is_absolute():
        # An interpreter's prefix (bin/python -> its lib/ beside it): the usual layout of what a caller runs.
        add(program.parent.parent, False)
        add(program.resolve().parent.parent, False)
    for path in readable:
        add(Path(path), False)
    add(cwd, False)
    for path in writable:
        add(Path(path), True)
    arguments: list[str] = []
    writable_roots = [path for path, write in wanted.items() if write]
    for path in sorted(wanted, key=lambda p: len(p.parts)):
        if not wanted[path] and any(_under(path, root) for root in writable_roots):
            continue  # inside a writable folder already: a read-only bind here would take the writes away
        arguments += ["--bind" if wanted[path] else "--ro-bind", str(path), str(path)]
    return arguments


def _hidden_folders() -> list[Path]:
    return [folder for folder in HIDDEN_FOLDERS if folder.is_dir() and not folder.is_symlink()]


def _hide_arguments() -> list[str]:
    arguments: list[str] = []
    for folder in _hidden_folders():
        arguments += ["--tmpfs", str(folder)]
    for secret in HIDDEN_FILES:
        if secret.is_file():
            arguments += ["--ro-bind", "/dev/null", str(secret)]
    return arguments


class _PidsCgroup:
    """A pids cgroup (v1 or v2) bounding the process count, when this machine lets rewheel make one.

    RLIMIT_NPROC does not bind here: the kernel exempts the real root, which the sandbox's uid maps onto."""

    def __init__(self, limit: int) -> None:
        self.path: Path | None = None
        for root in _CGROUP_PIDS:
            if not (root / "pids.max").exists() and not (root / "cgroup.procs").exists():
                continue
            if root == Path("/sys/fs/cgroup") and "pids" not in _read(root / "cgroup.subtree_control"):
                continue
            candidate = root / f"rewheel-sandbox-{uuid.uuid4().hex[:12]}"
            try:
                candidate.mkdir()
                (candidate / "pids.max").write_text(str(limit), encoding="ascii")
            except OSError:
                if candidate.exists():
                    _rmdir(candidate)
                continue
            self.path = candidate
            return

    def join_path(self) -> str | None:
        return str(self.path / "cgroup.procs") if self.path else None

    def remove(self) -> None:
        if self.path:
            _rmdir(self.path)


def process_limit_kind() -> str:
    """How this machine bounds a sandbox's processes: "cgroup" (a pids cgroup: forks past the limit fail),
    "rlimit" (RLIMIT_NPROC, the same for a user other than root) or "watch" (rewheel counts them and stops
    the sandbox past the limit)."""
    cgroup = _PidsCgroup(1)
    cgroup.remove()
    if cgroup.path is not None:
        return "cgroup"
    return "watch" if os.geteuid() == 0 else "rlimit"


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii")
    except OSError:
        return ""


def _rmdir(path: Path) -> None:
    # A cgroup folder is removed with rmdir once empty; its processes are gone when bwrap's pid namespace ends,
    # which can take a moment after the kill.
    for _ in range(50):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)


def _limits(
    memory_bytes: int | None, file_size: int, processes: int, cgroup_procs: str | None
) -> Callable[[], None]:
    def apply() -> (
        None
    ):  # runs in the child between fork and exec of bwrap: its limits pass to everything inside
        if cgroup_procs:
            with open(cgroup_procs, "w", encoding="ascii") as handle:
                handle.write(str(os.getpid()))
        if memory_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
        resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        # Past the file-size limit a write fails with EFBIG rather than killing the writer (an ignored signal
        # stays ignored across exec): wine and shells report the error, and the run reports its results.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    return apply


class _Bounded:
    """One output stream, kept to `limit` bytes: its first half and its last half; the middle is dropped."""

    def __init__(self, limit: int) -> None:
        self.half = max(limit // 2, 1)
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def add(self, data: bytes) -> None:
        room = self.half - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if not data:
            return
        self.tail += data
        excess = len(self.tail) - self.half
        if excess > 0:
            self.dropped += excess
            del self.tail[:excess]

    def text(self) -> str:
        marker = (
            f"\n[rewheel sandbox: {self.dropped} bytes of output discarded]\n".encode()
            if self.dropped
            else b""
        )
        return bytes(self.head + marker + self.tail).decode("utf-8", errors="replace")


def run_sandboxed(
    argv: list[str],
    *,
    cwd: Path,
    writable: Sequence[Path] = (),
    readable: Sequence[Path] = (),
    scratch: Sequence[Path] = (),
    env: Mapping[str, str] | None = None,
    network: bool = False,
    timeout: float = 600,
    memory_bytes: int | None = None,
    output_limit: int = 1 << 20,
    file_size: int = DEFAULT_FILE_SIZE,
    processes: int = DEFAULT_PROCESSES,
) -> subprocess.CompletedProcess[str]:
    """Run `argv` in the sandbox (see the module's docstring) and return its exit status and bounded output.

    `cwd` is visible (read-only unless also in `writable`); `readable` are folders the run needs that may lie
    under a hidden folder (a runtime's root, an interpreter's prefix, site folders); `scratch` are existing
    folders, usually inside a readable one, each covered by a fresh empty writable tmpfs for this run only
    (what the real target lets a program write, kept from the folder the host shares). Raises
    subprocess.TimeoutExpired (with the output so far) after `timeout` seconds, the whole tree killed, and
    SandboxUnavailable when there is no sandbox here."""
    if not argv:
        raise ValueError("run_sandboxed needs a command")
    bwrap = ensure_sandbox()
    cwd = Path(cwd)
    command = [
        bwrap,
        *_base_arguments(),
        *(["--share-net"] if network else []),
        *_hide_arguments(),
        *_binds(argv[0], cwd, readable, writable),
        *[argument for folder in scratch if Path(folder).is_dir() for argument in ("--tmpfs", str(folder))],
        # The hiding tmpfs become read-only once the binds inside them are made (those keep their own mode).
        *[argument for folder in _hidden_folders() for argument in ("--remount-ro", str(folder))],
        "--chdir",
        str(cwd),
        "--clearenv",
    ]
    for key, value in clean_environment(env).items():
        command += ["--setenv", key, value]
    command += ["--", *argv]
    cgroup = _PidsCgroup(processes)
    # Without a pids cgroup, RLIMIT_NPROC binds every user but the real root, which the sandbox maps onto
    # when rewheel runs as root: then rewheel counts the sandbox's processes itself and stops it past the limit.
    watch = processes if cgroup.path is None and os.geteuid() == 0 else None
    try:
        return _run_bounded(
            command,
            timeout=timeout,
            output_limit=output_limit,
            preexec=_limits(memory_bytes, file_size, processes, cgroup.join_path()),
            watch_processes=watch,
        )
    finally:
        cgroup.remove()


WATCH_INTERVAL = 0.05  # seconds between two counts of a watched sandbox's processes


def _sandbox_processes(bwrap_pid: int) -> int:
    """How many processes the sandbox started by bwrap `bwrap_pid` holds: the entries of its own /proc, seen
    through its first child (the pid namespace's init)."""
    try:
        children = Path(f"/proc/{bwrap_pid}/task/{bwrap_pid}/children").read_text().split()
        if not children:
            return 0
        return sum(1 for entry in os.listdir(f"/proc/{children[0]}/root/proc") if entry.isdigit())
    except OSError:
        return 0


def _run_bounded(
    command: list[str],
    *,
    timeout: float,
    output_limit: int,
    preexec: Callable[[], None],
    watch_processes: int | None = None,
) -> subprocess.CompletedProcess[str]:
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=preexec,
    )
    assert process.stdout is not None and process.stderr is not None
    streams = {
        process.stdout.fileno(): _Bounded(output_limit),
        process.stderr.fileno(): _Bounded(output_limit),
    }
    deadline = time.monotonic() + timeout
    timed_out = over_limit = False
    interval = WATCH_INTERVAL if watch_processes else 1.0
    with selectors.DefaultSelector() as selector:
        for fd in streams:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            for key, _ in selector.select(timeout=min(left, interval)):
                data = os.read(key.fd, 1 << 16)
                if data:
                    streams[key.fd].add(data)
                else:
                    selector.unregister(key.fd)
            if watch_processes and _sandbox_processes(process.pid) > watch_processes:
                over_limit = True
                break
    if over_limit:
        _kill(process)
        streams[process.stderr.fileno()].add(
            f"\n[rewheel sandbox: stopped: more than {watch_processes} processes]\n".encode()
        )
    elif timed_out:
        _kill(process)
    else:
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill(process)
    out, err = (bounded.text() for bounded in streams.values())
    process.stdout.close()
    process.stderr.close()
    if timed_out:
        raise subprocess.TimeoutExpired(command, timeout, output=out, stderr=err)
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def _kill(process: subprocess.Popen[bytes]) -> None:
    # bwrap leads its own session; killing it ends its pid namespace (--die-with-parent), hence every process
    # the sandboxed command started.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
