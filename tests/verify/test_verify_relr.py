"""DT_RELR (packed relative relocations) on musllinux targets whose musl profile predates 1.2.4, on real wheels.

numpy 2.2.6's musllinux_1_2 wheel grafts libraries built on Alpine >= 3.18 (linked with
`-z pack-relative-relocs`); musl applies DT_RELR from 1.2.4 on. The default musllinux_1_2 targets stand for
the supported Alpine releases (musl 1.2.5): no finding there. The legacy `-musl1.2.3` targets (Alpine 3.17,
Debian 12's musl) crash at load: an error there. numpy 1.26.4's musllinux_1_1 wheel predates that toolchain.
"""

from __future__ import annotations

import json
import re
import subprocess
import zipfile

import pytest

from helpers.wheels import NUMPY_2_MUSL
from pipeline.targets import get_target
from pipeline.verify import verify_wheel
from pipeline.verify.elf import is_elf, parse_elf
from pipeline.verify.linux import _check_relr
from pipeline.verify.report import WheelReport

NUMPY_1_MUSL = (
    "numpy",
    "1.26.4",
    "numpy-1.26.4-cp311-cp311-musllinux_1_1_x86_64.whl",
    "60dedbb91afcbfdc9bc0b1f3f402804070deed7392c23eb7a7f07fa857868e8a",
)
# what `readelf -d` shows with a RELR entry in numpy 2.2.6's musllinux_1_2 x86_64 wheel (5 of its ELF files)
NUMPY_2_RELR_LIBRARIES = {"libgcc_s", "libgfortran", "libquadmath", "libstdc++"}


def _relr_files(wheel: object) -> set[str]:
    with zipfile.ZipFile(str(wheel)) as archive:
        return {
            name
            for name in archive.namelist()
            if is_elf(data := archive.read(name)) and parse_elf(data, name).uses_relr
        }


def test_musl_version_comes_from_the_targets_profile() -> None:
    assert get_target("musllinux_1_1_x86_64").musl_version_key == (1, 2, 5)
    assert get_target("musllinux_1_2_aarch64-musl1.2.3").musl_version_key == (1, 2, 3)
    assert get_target("manylinux_2_17_x86_64").musl_version_key is None
    assert get_target("win_amd64").musl_version_key is None


def test_numpy_2_on_the_default_musl_profile_is_clean(pypi_file) -> None:  # type: ignore[no-untyped-def]
    """Every supported Alpine release loads DT_RELR: the default target reports nothing at all."""
    report = verify_wheel(pypi_file(*NUMPY_2_MUSL), "musllinux_1_2_x86_64")
    assert report.ok and report.findings == [], [f.message for f in report.findings]


def test_numpy_2_musl_1_2_3_names_every_grafted_library_with_relr(pypi_file) -> None:  # type: ignore[no-untyped-def]
    wheel = pypi_file(*NUMPY_2_MUSL)
    report = verify_wheel(wheel, "musllinux_1_2_x86_64-musl1.2.3")
    relr = [f for f in report.findings if f.code == "relr-unsupported"]
    assert relr and all(f.severity == "error" for f in relr) and not report.ok
    flagged = {f.file for f in relr}
    assert flagged == _relr_files(wheel)
    assert {re.sub(r"-[0-9a-f]{8}.*", "", str(f).removeprefix("numpy.libs/")) for f in flagged} == (
        NUMPY_2_RELR_LIBRARIES
    )
    quadmath = next(f for f in relr if "libquadmath" in str(f.file))
    assert quadmath.symbol == "DT_RELR"
    assert quadmath.message == (
        f"{quadmath.file} uses DT_RELR (packed relative relocations): musl loads these from 1.2.4, but "
        "musllinux_1_2_x86_64-musl1.2.3 stands for musl 1.2.3 (Alpine 3.17 and older crash at load)"
    )
    # nothing else is wrong with the wheel: its extensions' symbols all resolve on musl 1.2.3
    assert {f.code for f in report.findings} == {"relr-unsupported"}
    # the JSON report carries the same finding
    as_json = report.to_json()
    assert any(
        f["code"] == "relr-unsupported" and f["file"] == quadmath.file and f["severity"] == "error"
        for f in as_json["findings"]
    )


def test_relr_is_flagged_only_where_the_profiles_musl_cannot_apply_it(pypi_file) -> None:  # type: ignore[no-untyped-def]
    wheel = pypi_file(*NUMPY_2_MUSL)
    default, legacy = get_target("musllinux_1_2_x86_64"), get_target("musllinux_1_2_x86_64-musl1.2.3")
    with zipfile.ZipFile(str(wheel)) as archive:
        name = next(n for n in archive.namelist() if "libquadmath" in n)
        info = parse_elf(archive.read(name), name)
    newer, older = WheelReport(wheel.name, default.name), WheelReport(wheel.name, legacy.name)
    _check_relr(name, info, default, newer)
    _check_relr(name, info, legacy, older)
    assert newer.findings == [] and [f.code for f in older.findings] == ["relr-unsupported"]


def test_numpy_1_26_musllinux_1_1_has_no_relr(pypi_file) -> None:  # type: ignore[no-untyped-def]
    wheel = pypi_file(*NUMPY_1_MUSL)
    assert _relr_files(wheel) == set()
    report = verify_wheel(wheel, "musllinux_1_1_x86_64")
    assert report.ok and report.findings == [], [f.message for f in report.findings]


def test_cli_json_reports_relr(run_cli, pypi_file) -> None:  # type: ignore[no-untyped-def]
    wheel = pypi_file(*NUMPY_2_MUSL)
    code, out, _err = run_cli("verify", str(wheel), "--target", "musllinux_1_2_x86_64-musl1.2.3", "--json")
    assert code == 1
    findings = [f for r in json.loads(out)["results"] for f in r["findings"]]
    assert {f["code"] for f in findings} == {"relr-unsupported"}


def _loader_musl_version(interpreter: str) -> tuple[int, ...]:
    """The musl version of the loader the interpreter names in PT_INTERP (musl's loader, run bare, prints
    "Version 1.2.3" on stderr)."""
    from elftools.elf.elffile import ELFFile

    with open(interpreter, "rb") as handle:
        loader = next(
            s.get_interp_name() for s in ELFFile(handle).iter_segments() if s["p_type"] == "PT_INTERP"
        )
    printed = subprocess.run([loader], capture_output=True, text=True).stderr
    found = re.search(r"Version (\d+)\.(\d+)\.(\d+)", printed)
    assert found, printed
    return tuple(int(p) for p in found.groups())


@pytest.mark.slow
def test_numpy_2_crashes_at_import_on_a_musl_1_2_3_loader(pypi_file) -> None:  # type: ignore[no-untyped-def]
    """The runtime evidence for the finding's boundary: numpy 2.2.6's musllinux_1_2 wheel kills the interpreter
    at import on the legacy target's runtime (musl 1.2.3 loader: a signal, not an ImportError) and imports on the
    default target's (musl 1.2.5, what supported Alpine releases ship); numpy 1.26.4 imports on both."""
    from pipeline.runtimes import get_runtime
    from pipeline.smoke import smoke_wheel

    legacy, default = "musllinux_1_2_x86_64-musl1.2.3", "musllinux_1_2_x86_64"
    crashed = smoke_wheel(pypi_file(*NUMPY_2_MUSL), legacy, imports=["numpy"])
    assert _loader_musl_version(str(get_runtime(crashed.runtime or "").python())) < (1, 2, 4), crashed.runtime
    assert not crashed.ok and crashed.imported == []
    error = crashed.failures[0]["error"]
    # SIGSEGV: the interpreter's exit status is -11 (no Python error is printed, nothing to catch)
    assert error.startswith("interpreter died") and "ImportError" not in error, error
    # (-11 from the interpreter itself, 139 = 128 + SIGSEGV when the sandbox's init reports it)
    assert any(s in error for s in ("exit status -11", "exit status 139", "Segmentation")), error
    loaded = smoke_wheel(pypi_file(*NUMPY_2_MUSL), default, imports=["numpy"])
    assert loaded.ok, loaded.message
    for target in (legacy, default):
        fine = smoke_wheel(pypi_file(*NUMPY_1_MUSL), target, imports=["numpy"])
        assert fine.ok, (target, fine.message)
