"""The corpus benchmark's quick slice, and the false-alarm classes found on real wheels, one real wheel each.

Every wheel comes from benchmarks/data/verify_corpus.json (pinned by sha256, fetched once through the fetch
layer into the shared cache). The known-bad wheels are deterministic rewrites of real ones.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import verify_corpus  # noqa: E402

from pipeline.verify import verify_wheel  # noqa: E402


def _entry(pattern: str) -> verify_corpus.Entry:
    found = [e for e in verify_corpus.load_manifest() if re.search(pattern, e.filename)]
    assert found, f"the corpus manifest has no wheel matching {pattern}"
    return found[0]


def _codes(report: object, severity: str | None = None) -> set[str]:
    return {f.code for f in report.findings if severity is None or f.severity == severity}  # type: ignore[attr-defined]


def test_quick_slice_no_false_alarm_every_bad_case_caught() -> None:
    result = verify_corpus.run(quick=True, with_auditwheel=False, progress=False)
    assert result["wheels"] == len(verify_corpus.QUICK)
    assert result["false_alarms"] == 0, result["false_alarm_wheels"]
    cases = {c["expected"]: c for c in result["bad_cases"]}  # type: ignore[union-attr]
    assert set(cases) == {
        "too-new-symbol-version",
        "glibc-on-musl",
        "wrong-machine",
        "python-dll-mismatch",
        "abi3-violation",
        "missing-function",
        "relr-unsupported",
    }
    relr = cases["relr-unsupported"]
    assert relr["target"].endswith("-musl1.2.3"), relr
    assert all(c["caught"] for c in cases.values()), cases
    classes = result["classes"]
    for wanted in ("manylinux2014_x86_64", "manylinux2014_aarch64", "musllinux_1_1_x86_64",
                   "musllinux_1_2_aarch64", "win_amd64", "win_arm64", "win32"):  # fmt: skip
        assert classes.get(wanted), (wanted, classes)  # type: ignore[union-attr]


def test_abi3_so_in_a_version_specific_wheel_loads() -> None:
    """gevent's cp312 wheel ships _corecffi.abi3.so: CPython 3.12 lists .abi3.so among its suffixes."""
    entry = _entry(r"^gevent-.*-cp312-cp312-manylinux")
    report = verify_wheel(entry.path(), "manylinux_2_28_x86_64")
    assert report.ok and "python-tag-mismatch" not in _codes(report), report.findings
    # the free-threaded build leaves .abi3.so out of its suffixes: the same module there is a finding
    with_tag = verify_corpus.rewrite(
        entry.path(), Path(_tmp()), "cp313-cp313t-manylinux_2_28_x86_64", (".cpython-312-x86_64-linux-gnu.so", ".cpython-313t-x86_64-linux-gnu.so")
    )  # fmt: skip
    threaded = verify_wheel(with_tag, "manylinux_2_28_x86_64")
    assert "python-tag-mismatch" in _codes(threaded, "error")
    assert any("abi3" in f.message and "free-threaded" in f.message for f in threaded.findings)


def _tmp() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="rewheel-test-corpus-")


def test_windows_dll_under_data_platlib_is_found() -> None:
    """ujson's Windows wheels ship msvcp140-<hash>.dll under ujson-X.data/platlib/: it installs beside the .pyd."""
    entry = _entry(r"^ujson-.*-cp311-cp311-win_amd64\.whl$")
    report = verify_wheel(entry.path(), "win_amd64")
    assert report.ok and not {"missing-dll", "dll-outside-search-path"} & _codes(report), report.findings


def test_free_threaded_and_unknown_pythons_are_said_aloud() -> None:
    """cp313t wheels are checked against the free-threaded ABI's own exports (a --disable-gil libpython built
    from CPython's pinned source); 3.14t (no source reachable here) and 3.15 (no profile) are warnings that
    name what was not checked, never silence and never a false alarm."""
    from pipeline.profiles import cpython_exports

    threaded = cpython_exports("3.13t") or frozenset()
    assert {"_Py_DecRefShared", "PyUnstable_Module_SetGIL"} <= threaded
    assert "PyUnstable_Module_SetGIL" not in (cpython_exports("3.13") or ())
    entry = _entry(r"-cp313-cp313t-manylinux[\w.]*x86_64\.whl$")
    from pipeline.targets import target_for_tags
    from pipeline.verify.wheelname import wheel_tags

    target = target_for_tags(wheel_tags(entry.filename))
    report = verify_wheel(entry.path(), target.name)
    assert report.ok and not report.findings, report.findings
    windows = verify_wheel(_entry(r"-cp314-cp314t-win_amd64\.whl$").path(), "win_amd64")
    assert windows.ok and "missing-dll" not in _codes(windows), windows.findings  # python314t.dll is Python's
    assert any("3.14t" in f.message for f in windows.findings if f.code == "python-symbols-unchecked")
    source = _entry(r"^markupsafe-.*-cp312-cp312-musllinux_1_2_aarch64\.whl$")
    future = verify_corpus.rewrite(
        source.path(), Path(_tmp()), "cp315-cp315-musllinux_1_2_aarch64", (".cpython-312-aarch64-linux-musl.so", ".cpython-315-aarch64-linux-musl.so")
    )  # fmt: skip
    report = verify_wheel(future, "musllinux_1_2_aarch64")
    assert "python-symbols-unchecked" in _codes(report, "warning")
    assert any("3.15" in f.message and "not checked" in f.message for f in report.findings)


def test_compound_tag_is_checked_at_its_oldest_level(run_cli) -> None:  # type: ignore[no-untyped-def]
    """A wheel tagged manylinux1.manylinux_2_5.manylinux_2_28 promises glibc 2.5: `--target auto` checks 2_5."""
    entry = _entry(r"^markupsafe-.*-cp310-cp310-manylinux2014_x86_64")
    claimed = verify_corpus.rewrite(
        entry.path(), Path(_tmp()), "cp310-cp310-manylinux1_x86_64.manylinux_2_5_x86_64.manylinux_2_28_x86_64"
    )
    code, out, _ = run_cli("verify", str(claimed), "--target", "auto")
    assert code == 1 and "on manylinux_2_5_x86_64: FAIL" in out and "too-new-symbol-version" in out
    code, out, _ = run_cli("verify", str(entry.path()), "--target", "auto")
    assert code == 0, out


@pytest.mark.parametrize("pattern", [r"^pillow-.*-musllinux_1_2_x86_64\.whl$"])
def test_musl_wheels_linking_the_allowed_libz_pass(pattern: str) -> None:
    """musllinux policies allow libz.so.1 from the system: inflate/deflate/crc32 are its names, not musl's.
    (Pillow 13's grafted libXau/libXdmcp/libbsd/libmd carry DT_RELR: clean on the default profile, the one
    true error on the musl 1.2.3 one, recorded in the manifest as a legacy-profile defect.)"""
    entry = _entry(pattern)
    report = verify_wheel(entry.path(), "musllinux_1_2_x86_64")
    assert report.ok and not report.findings, report.findings
    legacy = verify_wheel(entry.path(), "musllinux_1_2_x86_64-musl1.2.3")
    assert "missing-symbol" not in _codes(legacy), legacy.findings
    assert _codes(legacy, "error") == {"relr-unsupported"}, legacy.errors
    assert entry.legacy_musl_defect == ("musl_1_2_3", "relr-unsupported")


def test_pywin32_dlls_in_its_own_folder_are_found_with_a_warning() -> None:
    """pywin32's modules import pywintypes3X.dll from pywin32_system32/, a folder pywin32 adds at run time."""
    entry = _entry(r"^pywin32-.*-win_amd64\.whl$")
    report = verify_wheel(entry.path(), "win_amd64")
    assert report.ok, report.errors
    assert "dll-outside-search-path" in _codes(report, "warning")
    assert any("pywin32_system32" in f.message for f in report.findings)
