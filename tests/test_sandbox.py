"""The sandbox for code from outside (pipeline/sandbox.py): real bubblewrap, real escapes tried from inside."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import need_toolset
from pipeline.sandbox import clean_environment, process_limit_kind, run_sandboxed, sandbox_available


@pytest.fixture(scope="module", autouse=True)
def _sandbox() -> None:
    need_toolset("sandbox")
    missing = sandbox_available()
    if missing:
        from conftest import unavailable

        unavailable(missing)


def _sh(script: str, tmp_path: Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return run_sandboxed(["/bin/sh", "-c", script], cwd=tmp_path, **kwargs)  # type: ignore[arg-type]


def test_runs_unprivileged_with_its_own_namespaces(tmp_path: Path) -> None:
    result = _sh("id -u; id -g; echo $$; grep CapEff /proc/self/status", tmp_path)
    assert result.returncode == 0, result.stderr
    uid, gid, pid, caps = result.stdout.split("\n")[:4]
    assert (uid, gid) == ("65534", "65534")
    assert int(pid) < 10  # its own pid namespace: the shell is one of the first processes in it
    assert caps.split()[1] == "0000000000000000"
    nested = _sh("unshare --user true && echo NESTED", tmp_path)
    assert "NESTED" not in nested.stdout


def test_secrets_are_out_of_sight_and_the_host_is_read_only(tmp_path: Path) -> None:
    assert Path("/etc/shadow").read_text()  # the host's is there (rewheel runs as root here) ...
    visible = Path.home() / ".rewheel-sandbox-test-secret"
    visible.write_text("secret\n")
    try:
        result = _sh(
            f"cat /etc/shadow; cat /etc/gshadow; cat {visible}; ls -A /root /home; "
            "touch /etc/rewheel-escape; touch /usr/rewheel-escape; echo done",
            tmp_path,
        )
    finally:
        visible.unlink()
    assert "root:$" not in result.stdout and "root:*" not in result.stdout and "secret" not in result.stdout
    assert result.stdout.startswith("/home:\n\n/root:\n")  # both empty
    assert result.stdout.rstrip().endswith("done")
    assert "Read-only file system" in result.stderr
    assert not Path("/etc/rewheel-escape").exists() and not Path("/usr/rewheel-escape").exists()


def test_writable_folders_and_a_private_tmp(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    Path("/tmp/rewheel-sandbox-host-file").write_text("host")
    try:
        result = _sh(
            f"echo built > {out}/result; echo scratch > /tmp/scratch; ls /tmp; "
            f"echo no > {tmp_path}/beside 2>/dev/null || echo refused",
            tmp_path,
            writable=[out],
        )
    finally:
        Path("/tmp/rewheel-sandbox-host-file").unlink()
    assert (out / "result").read_text() == "built\n"
    # A folder named readable inside a writable one (a build's TMPDIR in its work folder) stays writable.
    (out / "scratch").mkdir()
    inner = _sh(f"echo inner > {out}/scratch/file", tmp_path, writable=[out], readable=[out / "scratch"])
    assert inner.returncode == 0, inner.stderr
    assert "rewheel-sandbox-host-file" not in result.stdout
    assert "refused" in result.stdout and not (tmp_path / "beside").exists()
    assert not Path("/tmp/scratch").exists()


def test_no_network_even_to_the_loopback(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        code = (
            f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5); print('CONNECTED')"
        )
        result = run_sandboxed([sys.executable, "-c", code], cwd=tmp_path)
    assert "CONNECTED" not in result.stdout
    assert "ConnectionRefusedError" in result.stderr or "Network is unreachable" in result.stderr


def test_credentials_never_reach_the_environment(tmp_path: Path) -> None:
    passed = {"KEEP": "1", "REWHEEL_INDEX_PASSWORD": "p1", "TWINE_PASSWORD": "p2", "GITHUB_TOKEN": "p3",
              "AWS_SECRET_ACCESS_KEY": "p4", "MY_API_KEY": "p5", "PATH": "/usr/bin:/bin"}  # fmt: skip
    assert set(clean_environment(passed)) == {"KEEP", "PATH", "HOME", "LANG"}
    result = _sh("env", tmp_path, env=passed)
    assert "KEEP=1" in result.stdout
    for secret in ("p1", "p2", "p3", "p4", "p5"):
        assert f"={secret}" not in result.stdout
    # The host's own environment is not inherited either.
    os.environ["REWHEEL_SANDBOX_TEST_LEAK"] = "leak"
    try:
        assert "leak" not in _sh("env", tmp_path).stdout
    finally:
        del os.environ["REWHEEL_SANDBOX_TEST_LEAK"]


def test_time_limit_kills_the_whole_tree(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as caught:
        _sh(
            f"(sleep 60; touch {tmp_path}/late) & echo started; sleep 60",
            tmp_path,
            timeout=2,
            writable=[tmp_path],
        )
    assert time.monotonic() - started < 15
    assert "started" in str(caught.value.output)
    time.sleep(1)
    assert not (tmp_path / "late").exists()


def test_output_is_bounded(tmp_path: Path) -> None:
    result = _sh(
        "head -c 50000000 /dev/zero | tr '\\0' x; echo; echo last-line >&2", tmp_path, output_limit=4096
    )
    assert len(result.stdout) < 5000
    assert "bytes of output discarded" in result.stdout
    assert result.stderr.strip() == "last-line"


def test_memory_file_size_and_process_limits(tmp_path: Path) -> None:
    memory = run_sandboxed(
        [sys.executable, "-c", "b = bytearray(8 << 30); print('ALLOCATED')"],
        cwd=tmp_path,
        memory_bytes=1 << 30,
    )
    assert "MemoryError" in memory.stderr and "ALLOCATED" not in memory.stdout
    big = _sh(f"head -c 3000000 /dev/zero > {tmp_path}/big", tmp_path, writable=[tmp_path], file_size=1 << 20)
    assert big.returncode != 0 and (tmp_path / "big").stat().st_size <= 1 << 20
    forks = _sh(
        "for i in $(seq 200); do sleep 5 & done 2>&1; echo spawned", tmp_path, processes=50, timeout=60
    )
    if process_limit_kind() == "watch":
        assert "stopped: more than 50 processes" in forks.stderr
    else:
        assert "fork" in (forks.stdout + forks.stderr).lower()


def test_without_a_pids_cgroup_root_runs_are_counted_and_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RLIMIT_NPROC exempts the real root (what the sandbox maps onto when rewheel runs as root): without a
    pids cgroup (a container on cgroup v2, say) rewheel counts the processes itself."""
    import pipeline.sandbox

    if os.geteuid() != 0:
        # the non-root case is what the other process-limit tests check
        pytest.skip(f"this test is the root case and runs as uid {os.geteuid()}, not root")
    monkeypatch.setattr(pipeline.sandbox, "_CGROUP_PIDS", ())
    assert process_limit_kind() == "watch"
    started = time.monotonic()
    bomb = _sh("while true; do sleep 30 & done", tmp_path, processes=100, timeout=60)
    assert time.monotonic() - started < 20
    assert bomb.returncode != 0 and "stopped: more than 100 processes" in bomb.stderr
    calm = _sh("for i in 1 2 3 4 5 6 7 8; do sleep 0.2 & done; wait; echo calm", tmp_path, processes=100)
    assert calm.stdout.strip() == "calm"


# ---------------------------------------------------------------------------------------------------------
# smoke runs a wheel's code only in the sandbox

HOSTILE_MODULE = Path(__file__).parent / "data" / "hostile" / "hostile.py"


def _wheel(path: Path, name: str, version: str, members: dict[str, bytes], compresslevel: int = 6) -> Path:
    """A real wheel file (a py3-none-any one) with `members` and its dist-info, written with zipfile."""
    import base64
    import hashlib
    import zipfile

    dist_info = f"{name}-{version}.dist-info"
    files = dict(members)
    files[f"{dist_info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    files[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: rewheel-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = []
    for member, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{member},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = path / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED, compresslevel=compresslevel) as archive:
        for member, data in files.items():
            archive.writestr(member, data)
    return wheel


# Each kind of runtime smoke starts: a host CPython; a musl CPython; Debian's arm64 CPython and a musl aarch64
# CPython, both through qemu-user wrappers; python.org's Windows CPython under wine (prefix writable).
HOSTILE_TARGETS = [
    pytest.param("manylinux_2_17_x86_64", None, True, id="host-cpython"),
    # As in a container on cgroup v2: no pids cgroup, so rewheel counts the processes (see process_limit_kind).
    pytest.param("manylinux_2_17_x86_64", None, False, id="host-cpython-no-pids-cgroup"),
    pytest.param("musllinux_1_2_x86_64", "musl-cpython-3.11-x86_64", True, id="musl", marks=pytest.mark.slow),
    pytest.param(
        "manylinux_2_17_aarch64", "debian-arm64-python3.11", True, id="qemu-debian", marks=pytest.mark.slow
    ),
    pytest.param(
        "musllinux_1_2_aarch64", "musl-cpython-3.11-aarch64", True, id="qemu-musl", marks=pytest.mark.slow
    ),
    pytest.param("win_amd64", "windows-cpython-3.11-amd64", True, id="wine", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("target", "runtime", "cgroup"), HOSTILE_TARGETS)
def test_a_hostile_wheel_escapes_nothing_and_smoke_still_reports_its_import(
    target: str,
    runtime: str | None,
    cgroup: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    runtime_env: pytest.MonkeyPatch,
) -> None:
    from conftest import REPO, ensure_runtime
    from pipeline.smoke import smoke_wheel

    if runtime:
        ensure_runtime(runtime)
    if not cgroup:
        import pipeline.sandbox

        monkeypatch.setattr(pipeline.sandbox, "_CGROUP_PIDS", ())

    wheel = _wheel(tmp_path, "hostile", "1.0", {"hostile.py": HOSTILE_MODULE.read_bytes()})
    monkeypatch.setenv("REWHEEL_INDEX_PASSWORD", "index-secret-4711")
    monkeypatch.setenv("TWINE_PASSWORD", "twine-secret-4711")
    monkeypatch.setenv("HOSTILE_REPO", str(REPO))
    escaped = [Path("/root/rewheel-hostile-escape"), REPO / "rewheel-hostile-escape"]
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        monkeypatch.setenv("HOSTILE_PORT", str(listener.getsockname()[1]))
        try:
            result = smoke_wheel(wheel, target)
        finally:
            leaked = [path for path in escaped if path.exists()]
            for path in leaked:
                path.unlink()
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
    assert not leaked
    if process_limit_kind() == "watch":
        # No pids cgroup here and rewheel runs as root: the fork bomb is stopped by killing the sandbox, so
        # smoke reports the import as failed, with the reason.
        assert result.status == "failed" and "stopped: more than 512 processes" in result.message, (
            result.message
        )
        return
    assert result.status == "passed", result.message
    assert result.imported == ["hostile"]
    if runtime:
        assert result.runtime == runtime
    # The same module, imported by the test command (the other way smoke runs a wheel's code).
    result = smoke_wheel(wheel, target, command="python -c 'import hostile'")
    assert result.status == "passed", result.message
    assert not [path for path in escaped if path.exists()]


@pytest.mark.slow
def test_a_wheel_bomb_is_refused_before_smoke_writes_it(
    tmp_path: Path, runtime_env: pytest.MonkeyPatch
) -> None:
    """Item 17 of issue 24: 4,000 members of 1 MiB of zeros (4.5 MB) once made smoke write 4 GB."""
    from pipeline.errors import UnsafeArchive
    from pipeline.smoke import smoke_wheel

    zeros = bytes(1 << 20)
    members = {f"bomb/part{index}.bin": zeros for index in range(4000)}
    members["bomb/__init__.py"] = b""
    wheel = _wheel(tmp_path, "bomb", "1.0", members, compresslevel=1)
    assert wheel.stat().st_size < 40 << 20
    started = time.monotonic()
    with pytest.raises(UnsafeArchive, match="zip bomb"):
        smoke_wheel(wheel, "manylinux_2_17_x86_64")
    assert time.monotonic() - started < 10  # refused from its directory, before anything is written


# ---------------------------------------------------------------------------------------------------------
# The zig backend runs a package's own build code in the sandbox

BUILD_ESCAPES = Path(__file__).parent / "data" / "hostile" / "hostile_build.py"


def test_a_build_step_writes_its_tree_and_work_folder_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import REPO
    from pipeline.builders.backends.zig.builder import sandboxed_build_step

    tree, work = tmp_path / "tree", tmp_path / "work"
    tree.mkdir()
    work.mkdir()
    monkeypatch.setenv("TWINE_PASSWORD", "twine-secret-4711")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        env = {**os.environ, "HOSTILE_REPO": str(REPO), "HOSTILE_PORT": str(listener.getsockname()[1])}
        result = sandboxed_build_step([sys.executable, str(BUILD_ESCAPES)], tree=tree, work=work, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["built", "contained"], result.stdout
    assert (tree / "build" / "out.o").read_text() == "object\n"
    assert (work / "tmp").is_dir()
    assert not (REPO / "rewheel-hostile-escape").exists()


# ---------------------------------------------------------------------------------------------------------
# Metadata builds (for gaps: an sdist's dependencies when neither the index nor PKG-INFO says them)


def test_a_metadata_build_runs_setup_py_in_the_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import tarfile

    from conftest import REPO
    from pipeline.builders.backends.zig import build_metadata_sandboxed

    monkeypatch.setenv("REWHEEL_INDEX_PASSWORD", "index-secret-4711")
    source = tmp_path / "hostile_sdist-1.0"
    source.mkdir()
    (source / "setup.py").write_bytes((Path(__file__).parent / "data" / "hostile" / "setup.py").read_bytes())
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        # The folder it tries to write into: one the sandbox binds back read-only wherever it lies (the rewheel
        # cache). A checkout under /tmp is no such folder: there the sandbox's private /tmp takes the write, and
        # nothing reaches the host, but the script would take its own success for an escape.
        from pipeline.paths import cache_root

        canary = cache_root()
        (source / "hostile.json").write_text(
            json.dumps({"repo": str(canary), "port": listener.getsockname()[1]})
        )
        sdist = tmp_path / "hostile_sdist-1.0.tar.gz"
        with tarfile.open(sdist, "w:gz") as archive:
            archive.add(source, arcname=source.name)
        metadata = build_metadata_sandboxed(sdist, Path(sys.executable))
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert "Name: hostile-sdist" in metadata and "Requires-Dist: six>=1.16" in metadata
    assert not (canary / "rewheel-hostile-escape").exists() and not (REPO / "rewheel-hostile-escape").exists()


def test_the_requirements_a_backend_adds_are_asked_in_the_sandbox(tmp_path: Path) -> None:
    """pipeline/build_hooks.py, copied into the work folder, run by path with a Python that has `build` (this
    test's own, as a build venv's): the in-tree backend's get_requires_for_build_wheel hook runs sandboxed and
    what it adds that the venv lacks comes back."""
    from pipeline.builders.backends.zig.builder import dynamic_requirements

    tree = tmp_path / "tiny-1.0"
    tree.mkdir()
    (tree / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
    )
    # Its answer depends on where it runs: the sandbox's user is 65534.
    (tree / "backend.py").write_text(
        "import os\n\n"
        "def get_requires_for_build_wheel(config_settings=None):\n"
        "    return ['rewheel-no-such-dist>=1', 'build', 'run-by-uid-%d' % os.getuid()]\n"
    )
    assert dynamic_requirements(Path(sys.prefix), tree) == ["rewheel-no-such-dist>=1", "run-by-uid-65534"]
