"""Runtime archives (pipeline/runtimes/archive.py, sources.py): a real built runtime exported, served on
127.0.0.1, imported into an empty cache and used by smoke without building; tampered and mismatched archives
refused in one line; an unreachable source falls back to building, saying why in one line."""

from __future__ import annotations

import functools
import http.server
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ensure_runtime, need_toolset

RUNTIME = "musl-cpython-3.11-x86_64"
ZLIB = "musl-zlib-x86_64"
MARKUPSAFE = (
    "MarkupSafe",
    "2.1.5",
    "MarkupSafe-2.1.5-cp311-cp311-musllinux_1_1_x86_64.whl",
    "3a57fdd7ce31c7ff06cdfbf31dafa96cc533c21e443d57f5b1ecc6cdc668ec7f",
)


def _rewheel(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, env=env, timeout=1800
    )


def _env(cache: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REWHEEL_RUNTIME_SOURCE"}
    return {**env, "REWHEEL_CACHE_DIR": str(cache), **extra}


@pytest.fixture(scope="module")
def exported(shared_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared cache's real musl x86_64 3.11 runtime and its libz.so.1 build, exported."""
    need_toolset("musl")
    ensure_runtime(RUNTIME)  # built once per machine in the shared cache (the baseline run has it)
    out = tmp_path_factory.mktemp("exported")
    result = _rewheel("runtimes", "export", RUNTIME, ZLIB, "--out", str(out), env=_env(shared_cache))
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def served(exported: Path) -> Iterator[str]:
    """A static http server on 127.0.0.1 over the exported folder (what `rewheel serve` or a release is)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(exported))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_manifest_pins_the_archive_and_names_its_inputs(exported: Path) -> None:
    from pipeline.runtimes.archive import artefact, read_inner_manifest
    from pipeline.util import sha256_file

    manifest = json.loads((exported / f"{RUNTIME}.json").read_text())
    archive = exported / manifest["archive"]
    assert manifest["sha256"] == sha256_file(archive) and manifest["size"] == archive.stat().st_size
    inner = read_inner_manifest(archive)
    assert {k: inner[k] for k in ("entry", "inputs", "revision")} == {
        k: manifest[k] for k in ("entry", "inputs", "revision")
    }
    assert manifest["entry"]["name"] == RUNTIME and manifest["entry"]["data"] == "musl_cpython"
    # the CPython source and the libraries it links, each by sha256
    assert set(manifest["inputs"]) >= {"python3.11_3.11.2.orig.tar.gz", "openssl_3.0.20.orig.tar.gz"}
    assert artefact(RUNTIME).core() == {
        k: manifest[k] for k in ("name", "kind", "entry", "inputs", "revision")
    }


@pytest.mark.slow
def test_imported_runtime_smokes_a_real_wheel_without_building(
    served: str, pypi_file, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """An empty cache, the runtime source on 127.0.0.1: smoke takes the runtime from there (no compile: the
    profile layer is made in seconds) and imports a real upstream musllinux wheel on it."""
    wheel = pypi_file(*MARKUPSAFE)
    cache = tmp_path / "fresh-cache"
    env = _env(cache, REWHEEL_RUNTIME_SOURCE=served)
    result = _rewheel("smoke", "--json", str(wheel), "--target", "musllinux_1_2_x86_64", env=env)
    assert result.returncode == 0, result.stderr
    (found,) = json.loads(result.stdout)["results"]
    assert found["status"] == "passed" and found["runtime"] == RUNTIME, found
    assert f"{RUNTIME}: imported from {served}" in result.stderr
    assert f"{ZLIB}: imported from {served}" in result.stderr
    # nothing was compiled: no build step ran, no dependency folder was made
    assert ": configure" not in result.stderr and "make" not in result.stderr, result.stderr
    assert not (cache / "runtimes" / ".musl-deps-x86_64").exists()
    # The imported interpreter still has what wheels import at import time.
    python = cache / "runtimes" / RUNTIME / "bin" / "python3.11"
    probe = subprocess.run(
        [str(python), "-c", "import ssl, ctypes, decimal, zlib, hashlib, json; print(ssl.OPENSSL_VERSION)"],
        capture_output=True,
        text=True,
    )
    assert probe.returncode == 0 and "OpenSSL 3.0" in probe.stdout, probe.stderr


@pytest.mark.slow
def test_tampered_archive_is_refused_in_one_line(exported: Path, tmp_path: Path) -> None:
    manifest = json.loads((exported / f"{ZLIB}.json").read_text())
    data = bytearray((exported / manifest["archive"]).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / manifest["archive"]).write_bytes(bytes(data))
    (tmp_path / f"{ZLIB}.json").write_text(json.dumps(manifest))
    result = _rewheel("runtimes", "import", str(tmp_path / manifest["archive"]), env=_env(tmp_path / "cache"))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"is not its pin {manifest['sha256']}" in result.stderr
    assert not (tmp_path / "cache" / "runtimes" / f".{ZLIB}").exists()


@pytest.mark.slow
def test_mismatched_manifest_is_refused_in_one_line(exported: Path, tmp_path: Path) -> None:
    """An archive whose manifest is another recipe (another revision) than this rewheel's: pinned correctly,
    and still refused, since it would be taken for this recipe's build."""
    from pipeline.runtimes.archive import INNER_MANIFEST
    from pipeline.util import sha256_file

    source = exported / f"{ZLIB}.tar.xz"
    forged = tmp_path / f"{ZLIB}.tar.xz"
    with tarfile.open(source) as old, tarfile.open(forged, "w:xz") as new:
        for member in old:
            content = old.extractfile(member) if member.isreg() else None
            if member.name == INNER_MANIFEST and content is not None:
                manifest = json.loads(content.read())
                manifest["revision"] = {"musl_zlib": 99}
                raw = json.dumps(manifest).encode()
                member.size = len(raw)
                new.addfile(member, io.BytesIO(raw))
            else:
                new.addfile(member, content)
    result = _rewheel(
        "runtimes", "import", str(forged), "--sha256", sha256_file(forged), env=_env(tmp_path / "cache")
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"is not this rewheel's {ZLIB}: revision" in result.stderr
    assert not (tmp_path / "cache" / "runtimes" / f".{ZLIB}").exists()


@pytest.mark.slow
def test_wrong_archive_in_a_folder_source_is_not_taken(
    exported: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.runtimes.sources import take_from_source

    manifest = json.loads((exported / f"{ZLIB}.json").read_text())
    manifest["sha256"] = "0" * 64  # the archive is not the one the manifest pins
    (tmp_path / "source").mkdir()
    (tmp_path / "source" / f"{ZLIB}.json").write_text(json.dumps(manifest))
    (tmp_path / "source" / manifest["archive"]).write_bytes((exported / manifest["archive"]).read_bytes())
    monkeypatch.setenv("REWHEEL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("REWHEEL_RUNTIME_SOURCE", str(tmp_path / "source"))
    assert take_from_source(ZLIB) is False
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"{ZLIB}: not taken from {tmp_path / 'source'}: ") and line.endswith(
        "; building it"
    )
    assert "is not its pin" in line


@pytest.mark.slow
def test_unreachable_source_falls_back_to_building(tmp_path: Path) -> None:
    """The source on a closed 127.0.0.1 port: one line says so, then libz.so.1 is built here as usual."""
    need_toolset("musl")
    source = f"http://127.0.0.1:{_closed_port()}"
    env = _env(tmp_path / "cache", REWHEEL_RUNTIME_SOURCE=source)
    code = "from pipeline.runtimes.musl_cpython import MuslZlib; z = MuslZlib('x86_64'); z.build(); print(z.exists())"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=1800
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
    lines = [line for line in result.stderr.splitlines() if "not taken from" in line]
    assert len(lines) == 1 and lines[0].startswith(f"{ZLIB}: not taken from {source}: unreachable ("), lines
    assert lines[0].endswith("; building it")


def test_a_run_knows_its_runtimes_at_plan_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipelined run's background builder gets, in job order and once each, the runtimes smoke will use
    that an empty cache lacks (the real recipes' musllinux jobs)."""
    from pipeline.builders.prefetch import needed_runtimes
    from pipeline.plan import plan
    from pipeline.recipe import load_recipes

    jobs = plan(load_recipes(), ["musllinux_1_2_x86_64", "musllinux_1_2_aarch64"])
    monkeypatch.setenv("REWHEEL_CACHE_DIR", str(tmp_path / "empty"))
    names = [r.name for r in needed_runtimes(jobs)]
    assert set(names) >= {
        "musl-cpython-3.11-x86_64",
        "musl-cpython-3.13-x86_64",
        "musl-cpython-3.11-aarch64",
        "musl-cpython-3.13-aarch64",
    }, names
    assert len(names) == len(set(names))


@pytest.mark.slow
def test_native_libraries_are_relocated_into_the_importing_cache(shared_cache: Path, tmp_path: Path) -> None:
    """A real native library the zig backend built (its pkg-config file names its absolute prefix), exported
    from one cache and imported into another: pkg-config then points into the new cache."""
    import shutil

    built = sorted((shared_cache / "native").glob("*/libffi-*-static-*/.rewheel-complete"))
    if not built:
        # cffi's recipe pins libffi as a [[native]] source: build it for musl x86_64 as the zig backend would.
        from pipeline.builders.backends.zig.native_libraries import build_native_libraries
        from pipeline.recipe import load_recipe

        cffi = load_recipe(Path(__file__).resolve().parents[2] / "recipes" / "cffi.toml")
        build_native_libraries(list(cffi.native), "musllinux_1_2_x86_64")
        built = sorted((shared_cache / "native").glob("*/libffi-*-static-*/.rewheel-complete"))
    assert built, "libffi was built but no finished prefix is in the shared cache"
    library = built[0].parent
    first, second = tmp_path / "first", tmp_path / "second"
    copied = first / "native" / library.parent.name / library.name
    shutil.copytree(library, copied, symlinks=True)
    (copied / "lib" / "pkgconfig" / "libffi.pc").write_text(
        (library / "lib" / "pkgconfig" / "libffi.pc").read_text().replace(str(library), str(copied))
    )
    out = tmp_path / "out"
    assert (
        _rewheel("runtimes", "export", "native-libraries", "--out", str(out), env=_env(first)).returncode == 0
    )
    imported = _rewheel("runtimes", "import", str(out / "native-libraries.tar.xz"), env=_env(second))
    assert imported.returncode == 0, imported.stderr
    moved = second / "native" / library.parent.name / library.name
    assert (moved / ".rewheel-complete").is_file()
    pc = (moved / "lib" / "pkgconfig" / "libffi.pc").read_text()
    assert f"prefix={moved}\n" in pc and str(first) not in pc
