"""The zig backend's Windows half: real sdists built into win_amd64 / win_arm64 wheels on Linux, repaired with
delvewheel, verified against the Windows profiles and imported under wine (win_amd64; win_arm64 has no
runtime and is verified only). One build per wheel kind per session."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path, PurePath

import pefile
import pytest

from conftest import REPO, ensure_runtime, need_toolset, zig_build_job

MARKUPSAFE_RECIPE = REPO / "recipes" / "markupsafe.toml"


@pytest.fixture(scope="session")
def windows_recipes(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """markupsafe's recipe aimed at the Windows targets (the repository's recipe lists Linux targets only)."""
    folder = tmp_path_factory.mktemp("recipes")
    text = MARKUPSAFE_RECIPE.read_text(encoding="utf-8")
    text = text.replace("targets = [", 'targets = ["win_amd64", "win_arm64", ', 1)
    (folder / "markupsafe.toml").write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def markupsafe_win_amd64(zig_windows, windows_recipes, tmp_path_factory) -> dict:  # type: ignore[no-untyped-def,type-arg]
    return zig_build_job(
        windows_recipes / "markupsafe.toml", "win_amd64", tmp_path_factory.mktemp("wh-amd64")
    )


@pytest.fixture(scope="session")
def markupsafe_win_arm64(zig_windows, windows_recipes, tmp_path_factory) -> dict:  # type: ignore[no-untyped-def,type-arg]
    return zig_build_job(
        windows_recipes / "markupsafe.toml", "win_arm64", tmp_path_factory.mktemp("wh-arm64")
    )


@pytest.fixture(scope="session")
def cffi_win_amd64(zig_windows, tmp_path_factory) -> dict:  # type: ignore[no-untyped-def,type-arg]
    need_toolset("cmake")  # make, for libffi's autotools build
    return zig_build_job(REPO / "recipes" / "cffi.toml", "win_amd64", tmp_path_factory.mktemp("wh-cffi"))


def _pe(wheel: Path, member: str) -> pefile.PE:
    with zipfile.ZipFile(wheel) as archive:
        return pefile.PE(data=archive.read(member))


def _imports(pe: pefile.PE) -> dict[str, list[str]]:
    return {
        entry.dll.decode(): [i.name.decode() for i in entry.imports if i.name]
        for entry in getattr(pe, "DIRECTORY_ENTRY_IMPORT", [])
    }


@pytest.mark.slow
def test_markupsafe_win_amd64_is_a_pyd_linked_like_msvcs(markupsafe_win_amd64) -> None:  # type: ignore[no-untyped-def]
    job = markupsafe_win_amd64
    wheel = Path(job["wheels"][0])
    assert wheel.name == "markupsafe-2.1.5-cp311-cp311-win_amd64.whl"
    assert job["backend"] == "zig"
    names = zipfile.ZipFile(wheel).namelist()
    assert "markupsafe/_speedups.cp311-win_amd64.pyd" in names
    assert not [n for n in names if n.endswith((".lib", ".pdb"))]  # zig's by-products stay out of the wheel
    pe = _pe(wheel, "markupsafe/_speedups.cp311-win_amd64.pyd")
    assert pefile.MACHINE_TYPE[pe.FILE_HEADER.Machine] == "IMAGE_FILE_MACHINE_AMD64"
    imports = _imports(pe)
    # The UCRT (api sets) and kernel32, as an MSVC build: no msvcrt.dll, no VCRUNTIME140.dll.
    assert "python311.dll" in imports and "PyInit__speedups" not in imports["python311.dll"]
    assert {d.lower() for d in imports} - {"python311.dll", "kernel32.dll"} <= {
        d.lower() for d in imports if d.lower().startswith("api-ms-win-crt-")
    }
    exports = [s.name.decode() for s in pe.DIRECTORY_ENTRY_EXPORT.symbols if s.name]
    assert "PyInit__speedups" in exports


@pytest.mark.slow
def test_markupsafe_win_amd64_verifies_and_imports_under_wine(markupsafe_win_amd64, run_cli) -> None:  # type: ignore[no-untyped-def]
    job = markupsafe_win_amd64
    assert job["smoke"][0]["status"] == "passed", job["smoke"]
    assert job["smoke"][0]["runtime"] == "windows-cpython-3.11-amd64"
    wheel = job["wheels"][0]
    for target in ("win_amd64", "win_amd64-servercore", "win_amd64-nanoserver"):
        code, out, err = run_cli("verify", "--json", wheel, "--target", target)
        assert code == 0, (target, out, err)
    code, out, _ = run_cli(
        "smoke", "--json", wheel, "--target", "win_amd64-nanoserver",
        "--command", "python -c \"import markupsafe; assert markupsafe.escape('<a>') == '&lt;a&gt;'\"",
    )  # fmt: skip
    result = json.loads(out)["results"][0]
    assert code == 0 and result["runtime"] == "windows-cpython-3.11-amd64-nanoserver", result


@pytest.mark.slow
def test_markupsafe_win_arm64_is_verified_not_imported(markupsafe_win_arm64, run_cli) -> None:  # type: ignore[no-untyped-def]
    job = markupsafe_win_arm64
    wheel = Path(job["wheels"][0])
    assert wheel.name == "markupsafe-2.1.5-cp311-cp311-win_arm64.whl"
    pe = _pe(wheel, "markupsafe/_speedups.cp311-win_arm64.pyd")
    assert pefile.MACHINE_TYPE[pe.FILE_HEADER.Machine] == "IMAGE_FILE_MACHINE_ARM64"
    assert "python311.dll" in _imports(pe)
    assert job["smoke"][0]["status"] == "cannot-host"
    code, out, err = run_cli("verify", "--json", str(wheel), "--target", "win_arm64")
    assert code == 0, (out, err)
    code, out, err = run_cli("verify", "--json", str(wheel), "--target", "win_amd64")
    assert code == 1 and "wrong-machine" in out


def test_import_library_lists_data_exports_as_data(zig_windows) -> None:  # type: ignore[no-untyped-def]
    from pipeline.builders.backends.zig.windows import def_file_text, python_dll

    text = def_file_text(python_dll("3.11"))
    lines = {line.strip() for line in text.splitlines()}
    assert "LIBRARY python311.dll" in lines
    assert "PyExc_ValueError DATA" in lines and "_Py_NoneStruct DATA" in lines
    assert "PyLong_FromLong" in lines and "_PyArg_ParseTuple_SizeT" in lines  # a macro-made name


@pytest.mark.slow
def test_cffi_win_amd64_bundles_a_mangled_libffi_dll_and_calls_through_it(cffi_win_amd64) -> None:  # type: ignore[no-untyped-def]
    job = cffi_win_amd64
    wheel = Path(job["wheels"][0])
    assert wheel.name == "cffi-1.17.1-cp311-cp311-win_amd64.whl"
    names = zipfile.ZipFile(wheel).namelist()
    bundled = [n for n in names if n.lower().endswith(".dll")]
    # delvewheel's work: libffi under a name mangled with its hash; for a top-level extension module
    # (_cffi_backend) it goes to <name>.data/platlib/, i.e. next to the .pyd once installed.
    assert len(bundled) == 1 and bundled[0].startswith("cffi-1.17.1.data/platlib/libffi-8-"), names
    assert "cffi-1.17.1.dist-info/DELVEWHEEL" in names
    backend = _imports(_pe(wheel, "_cffi_backend.cp311-win_amd64.pyd"))
    assert PurePath(bundled[0]).name in backend, backend
    assert job["smoke"][0]["status"] == "passed", job["smoke"]  # the recipe's ffi_call into ucrtbase's abs()


@pytest.mark.slow
def test_cffi_verify_finds_the_bundled_dll(cffi_win_amd64, run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    wheel = Path(cffi_win_amd64["wheels"][0])
    code, out, err = run_cli("verify", "--json", str(wheel), "--target", "win_amd64-nanoserver")
    assert code == 0, (out, err)
    # Without the bundled DLL the checker must name the missing library.
    stripped = tmp_path / wheel.name
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(stripped, "w") as dest:
        for info in source.infolist():
            if not info.filename.lower().endswith(".dll"):
                dest.writestr(info, source.read(info))
    code, out, _ = run_cli("verify", "--json", str(stripped), "--target", "win_amd64")
    assert code == 1 and "libffi-8-" in out


def test_cpython_313_headers_are_the_gilzig_build_job(zig_windows) -> None:  # type: ignore[no-untyped-def]
    from pipeline.builders.backends.zig.windows import pc_pyconfig, windows_unavailable_reason

    text = pc_pyconfig("3.13")  # PC/pyconfig.h.in of trixie's pinned python3.13 orig tarball
    assert "/* #define Py_GIL_DISABLED 1 */" in text and 'pragma comment(lib,"python313.lib")' in text
    assert windows_unavailable_reason("3.13") is None
    assert "3.12" in (windows_unavailable_reason("3.12") or "")  # no python3.12 source in any Debian suite


@pytest.mark.slow
def test_markupsafe_cp313_win_amd64_builds_and_imports(zig_windows, windows_recipes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ensure_runtime("windows-cpython-3.13-amd64")
    job = zig_build_job(windows_recipes / "markupsafe.toml", "win_amd64", tmp_path / "wh", python="3.13")
    wheel = Path(job["wheels"][0])
    assert wheel.name == "markupsafe-2.1.5-cp313-cp313-win_amd64.whl"
    assert "python313.dll" in _imports(_pe(wheel, "markupsafe/_speedups.cp313-win_amd64.pyd"))
    assert (
        job["smoke"][0]["status"] == "passed" and job["smoke"][0]["runtime"] == "windows-cpython-3.13-amd64"
    )
