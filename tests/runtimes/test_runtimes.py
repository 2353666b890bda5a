"""Target runtimes: the musl CPythons built here from Debian's pinned sources, Debian's arm64 CPython under
qemu-user, and the `rewheel runtimes` command. Building is slow the first time (minutes) and then cached
under the shared cache, so a second run only checks what was built."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import (
    ARM64,
    ARM64_313,
    MUSL_313,
    MUSL_313_AARCH64,
    MUSL_AARCH64,
    MUSL_DYNAMIC,
    MUSL_STATIC,
    need_toolset,
)
from helpers.elf import interpreter_of


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)


# ---------------------------------------------------------------------------------------------------------
# The registry and the command (fast)


def test_list_json_names_every_runtime_with_its_state(run_cli, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("REWHEEL_CACHE_DIR", str(tmp_path))  # an empty cache: nothing built yet
    code, out, _ = run_cli("runtimes", "list", "--json")
    assert code == 0
    items = {item["name"]: item for item in json.loads(out)["runtimes"]}
    for name in (MUSL_DYNAMIC, MUSL_STATIC, ARM64, "host-cpython-3.11-x86_64"):
        assert name in items
    assert items[MUSL_DYNAMIC]["exists"] is False
    assert items[MUSL_DYNAMIC]["targets"] == ["musllinux_1_2_x86_64"]
    # the Debian 12 arm64 root hosts every manylinux level its glibc (2.36) loads
    assert items[ARM64]["targets"][0] == "manylinux_2_17_aarch64"
    assert {"manylinux_2_28_aarch64", "manylinux_2_36_aarch64"} <= set(items[ARM64]["targets"])
    assert "manylinux_2_39_aarch64" not in items[ARM64]["targets"]
    # What each hosts: its targets x its Python; where it comes from; what it is.
    assert items[MUSL_AARCH64]["hosts"] == ["musllinux_1_2_aarch64 cp311"]
    assert items[MUSL_313_AARCH64]["hosts"] == ["musllinux_1_2_aarch64 cp313"]
    assert items[ARM64_313]["hosts"][0] == "manylinux_2_17_aarch64 cp313"
    assert "manylinux_2_41_aarch64 cp313" in items[ARM64_313]["hosts"]  # trixie: glibc 2.41
    assert (items[MUSL_313]["arch"], items[MUSL_313]["libc"]) == ("x86_64", "musl")
    assert "trixie" in items[MUSL_313]["provenance"] and "3.13.5" in items[MUSL_313]["provenance"]
    assert items[MUSL_STATIC]["hosts"] == []
    assert items[MUSL_DYNAMIC]["root"].startswith(str(tmp_path / "runtimes"))
    # The host's own 3.11 (the interpreter running these tests is one) is always there.
    assert items["host-cpython-3.11-x86_64"]["exists"] is True
    assert "manylinux_2_17_x86_64" in items["host-cpython-3.11-x86_64"]["targets"]


def test_list_table_prints_a_run_of_policies_as_a_range_and_json_keeps_them_all(run_cli) -> None:
    code, out, _ = run_cli("runtimes", "list", "--json")
    assert code == 0
    host = next(i for i in json.loads(out)["runtimes"] if i["name"] == "host-cpython-3.11-x86_64")
    policies = [h.split()[0] for h in host["hosts"] if h.startswith("manylinux_")]
    assert len(policies) >= 3 and policies[0] == "manylinux_2_5_x86_64"
    code, out, _ = run_cli("runtimes", "list")
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("host-cpython-3.11-x86_64 "))
    last_level = policies[-1].removeprefix("manylinux_").removesuffix("_x86_64")
    assert f"manylinux_2_5..{last_level}_x86_64 cp311" in row
    assert "manylinux_2_12_x86_64" not in row  # the middle of the run is not spelled out


def test_every_data_entry_is_a_runtime_built_by_the_module_of_its_kind() -> None:
    """Runtimes are data: each data/<kind>.toml [[runtime]] is built by pipeline/runtimes/<kind>.from_data."""
    import importlib

    from pipeline.runtimes import all_runtimes, runtime_entries

    runtimes = all_runtimes()
    entries = runtime_entries()
    assert {"musl_cpython", "debian_root", "host_cpython"} <= set(entries)
    for kind, kind_entries in entries.items():
        module = importlib.import_module(f"pipeline.runtimes.{kind}")
        for entry in kind_entries:
            runtime = module.from_data(entry)
            assert runtimes[runtime.name].__class__ is runtime.__class__
    builds = [e for e in entries["musl_cpython"] if "base" not in e]  # the rest are profiles over these
    musl = [e for e in builds if e["flavour"] == "dynamic"]
    assert {(e["python"][:4], e["arch"]) for e in musl} == {
        ("3.11", "x86_64"),
        ("3.11", "aarch64"),
        ("3.12", "x86_64"),
        ("3.12", "aarch64"),
        ("3.13", "x86_64"),
        ("3.13", "aarch64"),
        ("3.11", "armv7l"),  # cross-built with zig, run with qemu-arm (tests/targets/test_armv7.py)
        ("3.13", "armv7l"),
    }
    for entry in builds:
        assert len(entry["source"]["sha256"]) == 64 and entry["provenance"]
    for entry in entries["musl_cpython"]:
        assert entry["provenance"]


def test_a_new_kind_is_a_data_file_and_a_module(tmp_path, monkeypatch) -> None:
    """The registry picks up any data/<kind>.toml + <kind>.py pair, with no change to the registry."""
    import sys

    import pipeline.runtimes as registry

    package = tmp_path / "extra"
    (package / "data").mkdir(parents=True)
    (package / "data" / "toy_kind.toml").write_text(
        '[[runtime]]\nname = "toy-1"\npython = "3.11"\n', encoding="utf-8"
    )
    (package / "toy_kind.py").write_text(
        "class Toy:\n"
        "    targets = ()\n"
        "    def __init__(self, entry):\n"
        "        self.name = entry['name']\n"
        "        self.python_version = entry['python']\n"
        "def from_data(entry):\n"
        "    return Toy(entry)\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(registry, "DATA_DIR", package / "data")
    monkeypatch.setattr(registry, "__path__", [*registry.__path__, str(package)])
    monkeypatch.delitem(sys.modules, "pipeline.runtimes.toy_kind", raising=False)
    registry.runtime_entries.cache_clear()
    try:
        found = registry.all_runtimes()
    finally:
        registry.runtime_entries.cache_clear()
    assert found["toy-1"].python_version == "3.11"
    assert type(found["toy-1"]).__module__ == "pipeline.runtimes.toy_kind"


def test_unknown_runtime_is_one_line_usage_error(run_cli) -> None:
    code, _, err = run_cli("runtimes", "build", "musl-cpython-9.9")
    assert code == 2
    assert err.strip().count("\n") == 0
    assert "unknown runtime 'musl-cpython-9.9'" in err and MUSL_DYNAMIC in err


def test_debian_source_is_checked_against_its_pin(tmp_path, monkeypatch) -> None:
    """A wrong pin is refused after apt fetched the file, and nothing lands in the cache."""
    from pipeline.errors import HashMismatch
    from pipeline.runtimes._support import DebianFile, debian_source_orig
    from pipeline.runtimes.musl_cpython import ZLIB_SOURCE

    need_toolset("debian-source")
    monkeypatch.setenv("REWHEEL_CACHE_DIR", str(tmp_path))
    wrong = DebianFile(package=ZLIB_SOURCE.package, filename=ZLIB_SOURCE.filename, sha256="0" * 64)
    with pytest.raises(HashMismatch, match="zlib_1.2.13.dfsg.orig.tar.bz2"):
        debian_source_orig(wrong)
    assert not list(tmp_path.rglob("*.tar.bz2"))
    right = debian_source_orig(ZLIB_SOURCE)
    assert right.is_file() and right.is_relative_to(tmp_path / "sha256")


# ---------------------------------------------------------------------------------------------------------
# The built runtimes (slow the first time, cached afterwards)


@pytest.mark.slow
def test_dynamic_musl_cpython_is_a_musl_interpreter(musl_dynamic) -> None:
    python = musl_dynamic.python()
    # the loader of its musl profile (trixie's musl 1.2.5), kept in the runtime, not the host's /lib
    assert (
        interpreter_of(python) == str(musl_dynamic.root() / "musl" / "lib" / "ld-musl-x86_64.so.1").encode()
    )
    probe = run(
        [
            str(python),
            "-c",
            "import sysconfig, ctypes, zlib, _socket; print(sysconfig.get_config_var('EXT_SUFFIX')); "
            "print(ctypes.CDLL(None) is not None)",
        ]
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == [".cpython-311-x86_64-linux-musl.so", "True"]


@pytest.mark.slow
def test_static_musl_cpython_reproduces_pip_venv_crash(musl_static, tmp_path) -> None:
    """The python-build-standalone-like static build: ctypes imports (bpo-37060 guard) but dlopen does not
    exist, and ensurepip's bundled pip 22.3.1 crashes in `python -m venv` exactly as users report."""
    python = musl_static.python()
    assert interpreter_of(python) is None  # fully static: no program interpreter
    probe = run([str(python), "-c", "import ctypes; print(ctypes.pythonapi); ctypes.CDLL(None)"])
    assert probe.stdout.strip() == "None"
    assert "OSError: Dynamic loading not supported" in probe.stderr
    venv = run([str(python), "-m", "venv", str(tmp_path / "venv")])
    assert venv.returncode != 0
    assert "'-m', 'ensurepip', '--upgrade', '--default-pip']' returned non-zero" in venv.stderr + venv.stdout
    # venv swallows its ensurepip child's output; run that same step to read the traceback itself.
    child = run(
        [str(tmp_path / "venv" / "bin" / "python3.11"), "-m", "ensurepip", "--upgrade", "--default-pip"]
    )
    output = child.stdout + child.stderr
    assert child.returncode != 0
    assert "pip-22.3.1-py3-none-any.whl/pip/_internal/utils/glibc.py" in output
    assert "in glibc_version_string_ctypes" in output
    assert "\nOSError: Dynamic loading not supported" in output


@pytest.mark.slow
def test_arm64_root_runs_under_qemu(arm64) -> None:
    probe = run(
        [str(arm64.python()), "-c", "import platform, ssl; print(platform.machine(), platform.libc_ver()[1])"]
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == ["aarch64", "2.36"]


@pytest.mark.slow
def test_build_command_reuses_what_exists(musl_dynamic, arm64, rewheel_exe, shared_cache) -> None:
    import os

    env = {**os.environ, "REWHEEL_CACHE_DIR": str(shared_cache)}
    result = run([*rewheel_exe, "runtimes", "build", MUSL_DYNAMIC, ARM64, "--json"], env=env)
    assert result.returncode == 0, result.stderr
    items = json.loads(result.stdout)["runtimes"]
    assert [i["name"] for i in items] == [MUSL_DYNAMIC, ARM64]
    assert all(i["reused"] for i in items)
    assert all(i["size_bytes"] > 10_000_000 for i in items)


@pytest.mark.slow
def test_musl_aarch64_cpython_runs_under_qemu_with_ctypes_and_ssl(musl_aarch64) -> None:
    """Cross-built with Zig, dynamic like Alpine's: musl's loader, _ctypes over a target-built libffi, ssl over
    a target-built OpenSSL, zlib, and lib-dynload full of extension modules."""
    root = musl_aarch64.root()
    interpreter = root / "bin" / "python3.11"
    assert interpreter_of(interpreter) == b"/lib/ld-musl-aarch64.so.1"
    dynload = list((root / "lib" / "python3.11" / "lib-dynload").glob("*.cpython-311-aarch64-linux-musl.so"))
    assert len(dynload) > 30
    probe = run(
        [
            str(musl_aarch64.python()),
            "-c",
            "import platform, sysconfig, ctypes, ssl, zlib, _decimal, json; "
            "print(platform.machine(), sysconfig.get_config_var('EXT_SUFFIX')); "
            "print(ctypes.CDLL(None).strlen(b'abcd'), ssl.OPENSSL_VERSION.split()[1], zlib.decompress(zlib.compress(b'a' * 9)).decode())",
        ]
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == [
        "aarch64",
        ".cpython-311-aarch64-linux-musl.so",
        "4",
        "3.0.20",
        "aaaaaaaaa",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("fixture, arch", [("musl_313", "x86_64"), ("musl_313_aarch64", "aarch64")])
def test_musl_cpython_313(fixture, arch, request) -> None:  # type: ignore[no-untyped-def]
    runtime = request.getfixturevalue(fixture)
    probe = run(
        [
            str(runtime.python()),
            "-c",
            "import platform, sys, sysconfig, ctypes, ssl, zlib; "
            "print(platform.machine(), sys.version.split()[0], sysconfig.get_config_var('EXT_SUFFIX'))",
        ]
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == [arch, "3.13.5", f".cpython-313-{arch}-linux-musl.so"]


@pytest.mark.slow
def test_trixie_arm64_root_runs_python313_under_qemu(arm64_313) -> None:
    probe = run(
        [
            str(arm64_313.python()),
            "-c",
            "import platform, sys, ssl, ctypes; print(platform.machine(), platform.libc_ver()[1], sys.version.split()[0])",
        ]
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == ["aarch64", "2.41", "3.13.5"]


def test_build_lock_waits_for_another_process_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two builders of one runtime: the second waits for the first's lock (a separate process holding it for a
    second), and `runtimes build` can then say the build was another process's, not claim it."""
    import sys
    import time

    from pipeline.runtimes._support import build_lock, waited_for_another_build

    monkeypatch.setenv("REWHEEL_CACHE_DIR", str(tmp_path))
    lock = tmp_path / "runtimes" / ".locks" / "lock-test.lock"
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time; h = open(sys.argv[1], 'w'); fcntl.flock(h, fcntl.LOCK_EX); "
            "print('held', flush=True); time.sleep(1.0)",
            str(lock),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    assert not waited_for_another_build("lock-test")
    started = time.monotonic()
    with build_lock("lock-test"):
        waited = time.monotonic() - started
    holder.wait(timeout=30)
    assert waited >= 0.5, f"the lock was not held by the other process (acquired after {waited:.2f} s)"
    assert waited_for_another_build("lock-test")
    with build_lock("lock-free"):
        pass
    assert not waited_for_another_build("lock-free")
