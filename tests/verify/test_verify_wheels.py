"""The symbol checker on real, pinned wheels from PyPI (fetched through rewheel's own hash-checked cache)."""

from __future__ import annotations

import json

import pytest

from pipeline.verify import verify_wheel

PILLOW = (
    "pillow",
    "10.4.0",
    "pillow-10.4.0-cp311-cp311-win_amd64.whl",
    "cbed61494057c0f83b83eb3a310f0bf774b09513307c434d4366ed64f4128a91",
)
MARKUPSAFE_MUSL = (
    "markupsafe",
    "2.1.5",
    "MarkupSafe-2.1.5-cp311-cp311-musllinux_1_1_x86_64.whl",
    "3a57fdd7ce31c7ff06cdfbf31dafa96cc533c21e443d57f5b1ecc6cdc668ec7f",
)
MARKUPSAFE_X86 = (
    "markupsafe",
    "2.1.5",
    "MarkupSafe-2.1.5-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "b91c037585eba9095565a3556f611e3cbfaa42ca1e865f7b8015fe5c7336d5a5",
)
MARKUPSAFE_ARM = (
    "markupsafe",
    "2.1.5",
    "MarkupSafe-2.1.5-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
    "6ec585f69cec0aa07d945b20805be741395e28ac1627333b1c5b0105962ffced",
)
CRYPTOGRAPHY = (
    "cryptography",
    "43.0.3",
    "cryptography-43.0.3-cp39-abi3-manylinux_2_28_x86_64.whl",
    "c2e6fc39c4ab499049df3bdf567f768a723a5e8464816e8f009f121a5a9f4405",
)
NUMPY_WINDOWS = (
    "numpy",
    "2.2.6",
    "numpy-2.2.6-cp311-cp311-win_amd64.whl",
    "e8213002e427c69c45a52bbd94163084025f533a55a59d6f9c5b820774ef3303",
)
NUMPY = (
    "numpy",
    "2.2.6",
    "numpy-2.2.6-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "ba10f8411898fc418a521833e014a77d3ca01c15b0c6cdcce6a0d2897e6dbbdf",
)


def test_pillow_fails_on_nano_server_naming_user32_and_gdi32(pypi_file) -> None:  # type: ignore[no-untyped-def]
    wheel = pypi_file(*PILLOW)
    nano = verify_wheel(wheel, "win_amd64-nanoserver")
    assert not nano.ok
    imaging = [
        f
        for f in nano.errors
        if f.file == "PIL/_imaging.cp311-win_amd64.pyd" and f.code == "missing-function"
    ]
    libraries = {f.library.upper() for f in imaging if f.library}
    assert libraries == {"USER32.DLL", "GDI32.DLL"}
    symbols = {f.symbol for f in imaging}
    assert {"CreateWindowExA", "GetDC", "ReleaseDC"} <= symbols or {
        "GetMessageA",
        "DispatchMessageA",
    } <= symbols
    assert len([f for f in imaging if f.library and f.library.upper() == "USER32.DLL"]) == 25
    assert len([f for f in imaging if f.library and f.library.upper() == "GDI32.DLL"]) == 23
    # nothing from the API-set-backed kernel32 surface every MSVC binary imports is flagged
    flagged = {f.symbol for f in nano.findings}
    assert not flagged & {
        "RtlCaptureContext",
        "RtlLookupFunctionEntry",
        "RtlVirtualUnwind",
        "LocalFree",
        "GlobalLock",
    }


def test_pillow_passes_on_desktop_and_servercore(pypi_file) -> None:  # type: ignore[no-untyped-def]
    wheel = pypi_file(*PILLOW)
    for target in ("win_amd64", "win_amd64-servercore"):
        report = verify_wheel(wheel, target)
        assert report.ok and report.findings == [], [f.message for f in report.findings]
        assert report.binaries == 7


def test_pillow_on_wrong_windows_arch_and_on_linux(pypi_file) -> None:  # type: ignore[no-untyped-def]
    wheel = pypi_file(*PILLOW)
    arm = verify_wheel(wheel, "win_arm64")
    assert {"tag-mismatch", "wrong-machine"} <= {f.code for f in arm.errors}
    linux = verify_wheel(wheel, "manylinux_2_17_x86_64")
    assert {"tag-mismatch", "wrong-os"} <= {f.code for f in linux.errors}


def test_markupsafe_musllinux_passes_on_musl_and_fails_on_glibc(pypi_file) -> None:  # type: ignore[no-untyped-def]
    wheel = pypi_file(*MARKUPSAFE_MUSL)
    assert verify_wheel(wheel, "musllinux_1_2_x86_64").findings == []
    glibc = verify_wheel(wheel, "manylinux_2_17_x86_64")
    assert any(f.code == "missing-library" and f.library == "libc.musl-x86_64.so.1" for f in glibc.errors)


def test_markupsafe_manylinux_on_musl_is_reported_as_glibc(pypi_file) -> None:  # type: ignore[no-untyped-def]
    wheel = pypi_file(*MARKUPSAFE_X86)
    assert verify_wheel(wheel, "manylinux_2_17_x86_64").findings == []
    musl = verify_wheel(wheel, "musllinux_1_2_x86_64")
    glibc = [f for f in musl.errors if f.code == "glibc-on-musl"]
    assert {"libc.so.6"} <= {f.library for f in glibc}
    assert any("memcpy@GLIBC_2.14" in (f.symbol or "") for f in glibc)


def test_markupsafe_aarch64(pypi_file) -> None:  # type: ignore[no-untyped-def]
    wheel = pypi_file(*MARKUPSAFE_ARM)
    assert verify_wheel(wheel, "manylinux_2_17_aarch64").findings == []
    x86 = verify_wheel(wheel, "manylinux_2_17_x86_64")
    wrong = [f for f in x86.errors if f.code == "wrong-machine"]
    assert wrong and "aarch64" in wrong[0].message
    assert any(f.code == "glibc-on-musl" for f in verify_wheel(wheel, "musllinux_1_2_aarch64").errors)


def test_cryptography_abi3_is_clean_and_glibc_2_28_is_named(pypi_file) -> None:  # type: ignore[no-untyped-def]
    wheel = pypi_file(*CRYPTOGRAPHY)
    assert verify_wheel(wheel, "manylinux_2_28_x86_64").findings == []
    old = verify_wheel(wheel, "manylinux_2_17_x86_64")
    too_new = [f for f in old.errors if f.code == "too-new-symbol-version"]
    assert too_new and all("GLIBC_2." in (f.symbol or "") for f in too_new)
    assert any(f.symbol and f.symbol.endswith("@GLIBC_2.28") for f in too_new)


@pytest.mark.slow
def test_numpy_bundled_libraries_resolve(pypi_file) -> None:  # type: ignore[no-untyped-def]
    wheel = pypi_file(*NUMPY)
    report = verify_wheel(wheel, "manylinux_2_17_x86_64")
    assert report.findings == [] and report.binaries >= 20
    musl = verify_wheel(wheel, "musllinux_1_2_x86_64")
    assert not musl.ok and any(f.code == "glibc-on-musl" for f in musl.errors)


@pytest.mark.slow
def test_numpy_windows_loads_on_nano_server(pypi_file) -> None:  # type: ignore[no-untyped-def]
    """numpy imports LocalFree, CreateSemaphoreA, GetProcessAffinityMask (absent from MinCore) and UCRT names
    mingw-w64 hides (_assert, btowc, long-double math); its OpenBLAS DLL has 9,546 exports. None of that
    may be reported: this wheel works on Nano Server."""
    wheel = pypi_file(*NUMPY_WINDOWS)
    for target in ("win_amd64", "win_amd64-nanoserver"):
        report = verify_wheel(wheel, target)
        assert report.findings == [], [f.message for f in report.findings][:5]
        assert report.binaries == 21


def test_cli_json_shape_and_exit_codes(pypi_file, run_cli) -> None:  # type: ignore[no-untyped-def]
    wheel = pypi_file(*PILLOW)
    code, out, _err = run_cli("verify", str(wheel), "--target", "win_amd64-nanoserver", "--json")
    assert code == 1
    data = json.loads(out)
    (result,) = data["results"]
    assert (
        result["wheel"] == PILLOW[2] and result["target"] == "win_amd64-nanoserver" and result["ok"] is False
    )
    finding = result["findings"][0]
    assert set(finding) == {"severity", "code", "file", "library", "symbol", "message"}
    code, out, _ = run_cli("verify", str(wheel), "--target", "win_amd64")
    assert code == 0 and ": ok (0 errors" in out
    code, out, _ = run_cli("verify", str(wheel), "--target", "win_amd64-nanoserver")
    assert code == 1 and "PIL/_imaging.cp311-win_amd64.pyd imports CreateWindowExA from USER32.dll" in out


def test_cli_auto_target_checks_a_wheelhouse(pypi_file, run_cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    for pin in (MARKUPSAFE_MUSL, MARKUPSAFE_ARM, CRYPTOGRAPHY):
        shutil.copy(pypi_file(*pin), tmp_path)
    code, out, _ = run_cli("verify", str(tmp_path), "--target", "auto", "--json")
    assert code == 0
    targets = {r["wheel"]: r["target"] for r in json.loads(out)["results"]}
    assert targets == {
        MARKUPSAFE_MUSL[2]: "musllinux_1_1_x86_64",  # the level its own tag names (policy targets)
        MARKUPSAFE_ARM[2]: "manylinux_2_17_aarch64",
        CRYPTOGRAPHY[2]: "manylinux_2_28_x86_64",
    }
    shutil.copy(pypi_file(*PILLOW), tmp_path)
    code, out, _ = run_cli("verify", str(tmp_path), "--target", "win_amd64-nanoserver", "--quiet")
    assert code == 1 and out.count("FAIL") == 4  # the three Linux wheels and Pillow all fail there
