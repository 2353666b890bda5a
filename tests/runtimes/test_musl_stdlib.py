"""The musl CPythons have what Alpine's python3 has and real wheels import at import time: _sqlite3, _bz2 and
_lzma (SQLite, bzip2 and xz built for musl beside zlib, libffi and OpenSSL), ssl, ctypes, _decimal and zlib.
Each module is made to work on the real runtime, under qemu-user for aarch64."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import MUSL_313, MUSL_313_AARCH64, MUSL_AARCH64, MUSL_DYNAMIC, ensure_runtime
from pipeline.runtimes import get_runtime, musl_cpython
from pipeline.runtimes._support import write_marker

PROBE = Path(__file__).parent.parent / "data" / "stdlib-modules-probe.py"


def test_configure_is_told_where_sqlite_bzip2_and_lzma_are() -> None:
    """No pkg-config file describes the static archives, so configure gets <NAME>_CFLAGS/_LIBS for each."""
    runtime = get_runtime(MUSL_DYNAMIC)
    assert isinstance(runtime, musl_cpython.MuslCPython)
    deps = runtime.dependencies.root()
    configure = runtime._configure_command(runtime.root(), deps)
    for name, library in (("LIBSQLITE3", "-lsqlite3"), ("BZIP2", "-lbz2"), ("LIBLZMA", "-llzma")):
        assert f"{name}_CFLAGS=-I{deps / 'include'}" in configure
        (libs,) = [arg for arg in configure if arg.startswith(f"{name}_LIBS=")]
        assert libs.startswith(f"{name}_LIBS=-L{deps / 'lib'} {library}")
    assert set(musl_cpython.MuslDependencies.LIBRARIES) <= set(musl_cpython._data()["libraries"])


def test_a_build_over_older_musl_deps_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A build records the deps revision it linked; one made over an older recipe (no SQLite, bzip2, xz) no
    longer counts as built, so the cached runtimes are rebuilt over the new deps."""
    monkeypatch.setenv("REWHEEL_CACHE_DIR", str(tmp_path))
    runtime = get_runtime(MUSL_DYNAMIC)
    assert isinstance(runtime, musl_cpython.MuslCPython)
    interpreter = runtime.root() / "bin" / f"python{runtime.python_version}"
    interpreter.parent.mkdir(parents=True)
    interpreter.write_bytes(b"")
    marker = {"name": runtime.name, "revision": runtime.revision}
    write_marker(runtime.root(), marker)
    assert not runtime.build_exists()  # built before builds recorded their deps
    write_marker(runtime.root(), {**marker, "musl_deps": musl_cpython.DEPS_REVISION - 1})
    assert not runtime.build_exists()
    write_marker(runtime.root(), {**marker, "musl_deps": musl_cpython.DEPS_REVISION})
    assert runtime.build_exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        MUSL_DYNAMIC,
        MUSL_313,
        MUSL_AARCH64,
        MUSL_313_AARCH64,
        # the same builds on musl 1.2.3's loader (Alpine 3.17, Debian 12): nothing the deps call is 1.2.5's own
        "musl-cpython-3.11-x86_64-musl1.2.3",
        "musl-cpython-3.11-aarch64-musl1.2.3",
    ],
)
def test_sqlite_bz2_lzma_ssl_ctypes_decimal_zlib_work(runtime_env, name: str) -> None:  # type: ignore[no-untyped-def]
    runtime = ensure_runtime(name)
    done = subprocess.run([*runtime.command(), str(PROBE)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["sqlite_version"] == "3.40.1"  # bookworm's sqlite3 orig, the pinned one
    assert found["sqlite_fts5_musl_rows"] == 2 and found["sqlite_json"] == 2
    assert found["bz2_round_trip"] and found["bz2_size"] < 200
    assert found["lzma_round_trip"] and found["lzma_xz_check"]
    assert found["zlib_round_trip"]
    assert found["ssl_openssl_version"].startswith("OpenSSL 3.0.20")
    assert found["ssl_context"] == "PROTOCOL_TLS_CLIENT"
    assert found["ctypes_strlen"] == len("rewheel")
    assert found["decimal"] == "0.1428571428571428571428571429" and found["decimal_c"]


def test_a_profile_over_a_rebuilt_build_is_remade(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A -musl1.2.3 profile runs a copy of its base build's interpreter: when the base is rebuilt (over new
    musl deps, say), the profile no longer counts as current, so the copy is taken again."""
    monkeypatch.setenv("REWHEEL_CACHE_DIR", str(tmp_path))
    profile = get_runtime("musl-cpython-3.11-x86_64-musl1.2.3")
    assert isinstance(profile, musl_cpython.MuslCPython)
    base = profile.build_root()
    base.mkdir(parents=True)
    built = {"name": MUSL_DYNAMIC, "revision": 2, "musl_deps": musl_cpython.DEPS_REVISION - 1}
    write_marker(base, built)
    profile.root().mkdir(parents=True)
    (profile.root() / musl_cpython.PROFILE_MARKER).write_text(json.dumps(profile._profile_key()))
    assert profile._profile_current()
    write_marker(base, {**built, "musl_deps": musl_cpython.DEPS_REVISION})
    assert not profile._profile_current()
