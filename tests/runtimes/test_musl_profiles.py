"""musl runtime profiles: one CPython build, run on the loader of the musl a target stands for.

The default musllinux_1_2 runtimes run on trixie's musl 1.2.5 (every supported Alpine ships 1.2.5); the legacy
`-musl1.2.3` runtimes run the very same binaries on bookworm's musl 1.2.3. Real wheels from PyPI tell them
apart: numpy 2.2.6's musllinux_1_2 wheel grafts libraries with DT_RELR, which musl loads from 1.2.4 on.
Pillow 12's musllinux wheel needs the system's libz.so.1, which the musllinux policy lets wheels rely on."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from conftest import MUSL_AARCH64, MUSL_DYNAMIC, ensure_runtime
from helpers.elf import interpreter_of
from helpers.wheels import NUMPY_2_MUSL

MUSL_DYNAMIC_123 = "musl-cpython-3.11-x86_64-musl1.2.3"
MUSL_AARCH64_123 = "musl-cpython-3.11-aarch64-musl1.2.3"
# Pillow 12.0.0's musllinux_1_2 x86_64 wheel: PIL/_imaging links the system's libz.so.1 (DT_NEEDED, not bundled).
PILLOW_12_MUSL = (
    "pillow",
    "12.0.0",
    "pillow-12.0.0-cp311-cp311-musllinux_1_2_x86_64.whl",
    "bc91a56697869546d1b8f0a3ff35224557ae7f881050e99f615e0119bf934b4e",
)
PILLOW_12_MUSL_AARCH64 = (
    "pillow",
    "12.0.0",
    "pillow-12.0.0-cp311-cp311-musllinux_1_2_aarch64.whl",
    "90387104ee8400a7b4598253b4c406f8958f59fcf983a6cea2b50d59f7d63d0b",
)
NUMPY_2_MUSL_AARCH64 = (
    "numpy",
    "2.2.6",
    "numpy-2.2.6-cp311-cp311-musllinux_1_2_aarch64.whl",
    "bd48227a919f1bafbdda0583705e547892342c26fb127219d60a5c36882609d1",
)


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)


def unpacked(wheel: Path, dest: Path) -> Path:
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(dest)
    return dest


# ---------------------------------------------------------------------------------------------------------
# Data (fast)


def test_every_legacy_profile_is_a_build_of_a_default_runtime_on_musl_123() -> None:
    from pipeline.runtimes import runtime_entries
    from pipeline.runtimes.musl_cpython import from_data, loader_package

    entries = {e["name"]: e for e in runtime_entries()["musl_cpython"]}
    legacy = {name: e for name, e in entries.items() if "base" in e}
    assert set(legacy) == {
        f"musl-cpython-{minor}-{arch}-musl1.2.3"
        for minor in ("3.11", "3.13")
        for arch in ("x86_64", "aarch64", "armv7l")
    }
    for name, entry in legacy.items():
        base = entries[entry["base"]]
        assert name == f"{base['name']}-musl1.2.3" and entry["musl"] == "1.2.3" and base["musl"] == "1.2.5"
        assert entry["targets"] == [f"{base['targets'][0]}-musl1.2.3"]
        runtime = from_data(entry)
        # the same build: Python, arch and source are the base's, and it lives in the base's folder
        assert (runtime.python_version, runtime.arch) == (base["python"][:4], base["arch"])
        assert runtime.build_root().name == base["name"]
    for entry in entries.values():
        if entry.get("flavour", "dynamic") == "dynamic" or "base" in entry:
            package = loader_package(from_data(entry).arch, entry["musl"])
            assert len(package.sha256) == 64 and package.filename.startswith(f"musl_{entry['musl']}")


def test_runtime_targets_are_all_in_the_catalogue() -> None:
    """A target name in the data that the catalogue does not know would make its runtime host nothing."""
    from pipeline.runtimes import runtime_entries
    from pipeline.targets import catalogue

    for entry in runtime_entries()["musl_cpython"]:
        for target in entry.get("targets", ()):
            assert target in catalogue(), (entry["name"], target)


def test_cp312_comes_from_python_org_and_names_what_is_missing_here() -> None:
    from pipeline.runtimes import get_runtime
    from pipeline.runtimes.musl_cpython import UrlFile, _reachable

    for arch in ("x86_64", "aarch64"):
        runtime = get_runtime(f"musl-cpython-3.12-{arch}")
        source = runtime.entry.source  # type: ignore[attr-defined]
        assert isinstance(source, UrlFile)
        assert source.url.startswith("https://") and source.url.endswith("/3.12.12/Python-3.12.12.tar.xz")
        assert source.sha256 == "fb85a13414b028c49ba18bbd523c2d055a30b56b18b92ce454ea2c51edc656c4"
        assert "pyenv" in runtime.provenance and "3.12.12" in runtime.provenance  # type: ignore[attr-defined]
        reason = runtime.unavailable_reason()
        if _reachable(source.url) is None:
            assert reason is None  # a machine that reaches python.org (GitHub's runners) builds it
        else:
            assert reason is not None and reason.startswith(
                "python.org's Python-3.12.12.tar.xz cannot be fetched from this machine"
            )


# ---------------------------------------------------------------------------------------------------------
# Real runtimes and wheels (slow)


@pytest.mark.slow
def test_a_profile_is_made_in_seconds_over_the_same_build(runtime_env) -> None:  # type: ignore[no-untyped-def]
    default = ensure_runtime(MUSL_DYNAMIC)
    legacy = ensure_runtime(MUSL_DYNAMIC_123)
    # no second CPython: the legacy interpreter is the default's build with another PT_INTERP
    assert interpreter_of(default.python()) == str(default.root() / "musl/lib/ld-musl-x86_64.so.1").encode()
    assert interpreter_of(legacy.python()) == str(legacy.root() / "musl/lib/ld-musl-x86_64.so.1").encode()
    assert (legacy.root() / "lib" / "python3.11").resolve() == (
        default.root() / "lib" / "python3.11"
    ).resolve()
    for runtime in (default, legacy):
        made = json.loads((runtime.root() / "rewheel-musl-profile.json").read_text(encoding="utf-8"))
        assert made["profile_seconds"] < 30
    # remade from scratch (the build stays): seconds, not a CPython build
    (legacy.root() / "rewheel-musl-profile.json").unlink()
    assert not legacy.exists() and default.exists()
    started = time.monotonic()
    legacy.build()
    assert legacy.exists() and time.monotonic() - started < 60


@pytest.mark.slow
def test_each_profile_reports_its_musl_to_pip_and_to_programs_it_starts(runtime_env) -> None:  # type: ignore[no-untyped-def]
    """pip's musl probe execs the interpreter's PT_INTERP; a child started with sys.executable meets the same
    loader (it prints the version musl's loader reports when run by itself)."""
    probe = (
        "import subprocess, sys\n"
        "from packaging._musllinux import _get_musl_version\n"
        "print(_get_musl_version(sys.executable))\n"
        "loader = subprocess.run(['readelf', '-l', sys.executable], capture_output=True, text=True).stdout\n"
        "interp = loader.split('interpreter: ')[1].split(']')[0]\n"
        "print(subprocess.run([interp], capture_output=True, text=True).stderr.split('Version ')[1].split()[0])\n"
        "print(subprocess.run([sys.executable, '-c', 'import zlib, ssl; print(42)'], capture_output=True, "
        "text=True).stdout.strip())\n"
    )
    packaging = str(Path(__import__("packaging").__file__).parent.parent)
    for name, version in ((MUSL_DYNAMIC, "1.2.5"), (MUSL_DYNAMIC_123, "1.2.3")):
        runtime = ensure_runtime(name)
        result = run(
            [str(runtime.python()), "-c", probe], env={"PYTHONPATH": packaging, "PATH": "/usr/bin:/bin"}
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.split("\n")[:3] == ["_MuslVersion(major=1, minor=2)", version, "42"]


@pytest.mark.slow
def test_numpy_with_relr_imports_on_musl_125_and_crashes_on_musl_123(
    runtime_env, pypi_file, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    site = unpacked(pypi_file(*NUMPY_2_MUSL), tmp_path / "numpy")
    code = "import numpy; print(int(numpy.arange(5).sum()))"
    default = run([str(ensure_runtime(MUSL_DYNAMIC).python()), "-c", code], env={"PYTHONPATH": str(site)})
    assert default.returncode == 0, default.stderr
    assert default.stdout.strip() == "10"
    legacy = run([str(ensure_runtime(MUSL_DYNAMIC_123).python()), "-c", code], env={"PYTHONPATH": str(site)})
    assert legacy.returncode == -11  # SIGSEGV: musl 1.2.3 ignores DT_RELR and runs unrelocated code


@pytest.mark.slow
def test_pillow_imports_with_the_runtimes_libz(runtime_env, pypi_file, tmp_path) -> None:  # type: ignore[no-untyped-def]
    site = unpacked(pypi_file(*PILLOW_12_MUSL), tmp_path / "pillow")
    imaging = next(site.glob("PIL/_imaging.cpython-311-x86_64-linux-musl.so"))
    needed = run(["readelf", "-d", str(imaging)]).stdout
    assert "[libz.so.1]" in needed and not list(site.glob("pillow.libs/libz-*"))  # the system's, not bundled
    runtime = ensure_runtime(MUSL_DYNAMIC)
    code = (
        "import io, zlib\nfrom PIL import Image\nbuffer = io.BytesIO()\n"
        "Image.new('RGB', (8, 8), 'red').save(buffer, 'PNG')\n"
        "print(Image.open(io.BytesIO(buffer.getvalue())).getpixel((1, 1)))\n"
        "print(open('/proc/self/maps').read().count('musl/lib/libz.so.1') > 0)\n"
    )
    result = run([str(runtime.python()), "-c", code], env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["(255, 0, 0)", "True"]


@pytest.mark.slow
def test_aarch64_profiles_same_build_other_loader(runtime_env, pypi_file, tmp_path) -> None:  # type: ignore[no-untyped-def]
    default = ensure_runtime(MUSL_AARCH64)
    legacy = ensure_runtime(MUSL_AARCH64_123)
    # the same build: its stdlib, and its interpreter with only the references musl 1.2.3 cannot bind made weak
    # (Zig compiles against musl 1.2.5's headers: preadv2, pwritev2)
    assert (legacy.root() / "lib" / "python3.11").resolve() == (
        default.root() / "lib" / "python3.11"
    ).resolve()
    copy = (legacy.root() / "bin" / "python3.11").read_bytes()
    built = (default.root() / "bin" / "python3.11").read_bytes()
    assert len(copy) == len(built) and sum(a != b for a, b in zip(copy, built, strict=True)) == 2
    made = json.loads((legacy.root() / "rewheel-musl-profile.json").read_text(encoding="utf-8"))
    assert made["weakened"] == ["preadv2", "pwritev2"]
    numpy = unpacked(pypi_file(*NUMPY_2_MUSL_AARCH64), tmp_path / "numpy")
    pillow = unpacked(pypi_file(*PILLOW_12_MUSL_AARCH64), tmp_path / "pillow")
    code = "import numpy; from PIL import Image; import PIL._imaging; print(int(numpy.arange(5).sum()))"
    env = {"PYTHONPATH": f"{numpy}:{pillow}", "PATH": "/usr/bin:/bin"}
    on_125 = run([str(default.python()), "-c", code], env=env)
    assert on_125.returncode == 0, on_125.stderr
    assert on_125.stdout.strip() == "10"
    on_123 = run([str(legacy.python()), "-c", code], env=env)
    assert on_123.returncode != 0
    # the loader each wrapper runs under qemu is its profile's
    for runtime, version in ((default, "1.2.5"), (legacy, "1.2.3")):
        sysroot = runtime.root() / "sysroot"
        qemu = json.loads((runtime.build_root() / "rewheel-runtime.json").read_text(encoding="utf-8"))["qemu"]
        loader = run([qemu, "-L", str(sysroot), str(sysroot / "lib" / "ld-musl-aarch64.so.1")])
        assert f"Version {version}" in loader.stderr


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
