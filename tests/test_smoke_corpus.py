"""The smoke corpus benchmark's quick slice: real upstream wheels (pinned by sha256 in
benchmarks/data/smoke_corpus.json) smoked on their own targets, with smoke's duties visible: a test package
left out, an optional backend whose extra is absent skipped with its reason, declared dependencies installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import MUSL_313, MUSL_DYNAMIC, ensure_runtime, need_toolset

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import smoke_corpus  # noqa: E402


def test_the_corpus_covers_the_targets_pythons_and_languages() -> None:
    entries = smoke_corpus.load_manifest()
    assert 40 <= len(entries) <= 70
    assert {e.target for e in entries} == {
        "musllinux_1_2_x86_64", "musllinux_1_2_aarch64", "manylinux_2_28_aarch64", "win_amd64",
    }  # fmt: skip
    assert {e.python for e in entries} == {"3.11", "3.13"}
    assert {e.language for e in entries} >= {"C", "C++", "Cython", "Rust", "Fortran"}
    assert all(len(e.sha256) == 64 for e in entries)
    assert len(smoke_corpus.quick_entries(entries)) == len(smoke_corpus.QUICK)


@pytest.mark.slow
def test_quick_slice_no_false_failure(runtime_env) -> None:  # type: ignore[no-untyped-def]
    ensure_runtime(MUSL_DYNAMIC)
    ensure_runtime(MUSL_313)
    summary = smoke_corpus.run(quick=True, progress=False)
    results = {str(r["wheel"]).split("-")[0]: r for r in summary["results"]}  # type: ignore[attr-defined]
    assert summary["failed"] == 0, [r for r in results.values() if r["status"] == "failed"]
    # zstandard's cffi backend needs cffi, an extra zstandard does not declare: skipped, with the reason
    zstandard = results["zstandard"]
    skipped = {s["module"]: s["reason"] for s in zstandard["skipped"]}
    assert "zstandard._cffi" in skipped and "cffi" in skipped["zstandard._cffi"]
    assert "zstandard.backend_c" in zstandard["imported"]
    # greenlet's own tests (they need objgraph, ...) are not imported at all
    greenlet = results["greenlet"]
    assert greenlet["status"] == "passed" and "greenlet._greenlet" in greenlet["imported"]
    assert not any(".tests" in m for m in greenlet["imported"] + [s["module"] for s in greenlet["skipped"]])
    # pydantic-core declares typing_extensions: installed beside it, so it imports
    pydantic = results["pydantic_core"]
    assert pydantic["status"] == "passed", pydantic
    assert any(
        d.lower().replace("_", "-").startswith("typing-extensions==") for d in pydantic["dependencies"]
    )
    line = smoke_corpus.closing_line(summary)
    assert line.startswith(f"smoke corpus: {len(smoke_corpus.QUICK)} wheels, ") and " 0 FAILED" in line


def _corpus_wheel(target: str, python: str, project: str) -> Path:
    entries = smoke_corpus.load_manifest()
    (entry,) = [e for e in entries if (e.target, e.python, e.project) == (target, python, project)]
    return entry.path()


@pytest.mark.slow
def test_a_runtime_limit_is_cannot_host_naming_the_missing_piece(run_cli, runtime_env) -> None:  # type: ignore[no-untyped-def]
    """Pillow's _imagingtk needs tkinter, which the musl CPython was built without: not the wheel's fault, so
    cannot-host (exit 3) naming tkinter, with everything else imported."""
    import json

    ensure_runtime(MUSL_DYNAMIC)
    wheel = _corpus_wheel("musllinux_1_2_x86_64", "3.11", "pillow")
    code, out, _ = run_cli("smoke", "--json", str(wheel))
    (result,) = json.loads(out)["results"]
    assert code == 3, result
    assert result["status"] == "cannot-host" and result["failures"] == []
    assert result["message"].startswith("the runtime lacks tkinter: ")
    (limit,) = result["runtime_limits"]
    assert limit["module"] == "PIL._imagingtk" and limit["missing"] == "tkinter"
    assert "PIL._imaging" in result["imported"]
    # named explicitly, the same module is still not the wheel's failure
    code, out, _ = run_cli("smoke", "--json", str(wheel), "--import", "PIL._imagingtk")
    assert code == 3 and json.loads(out)["results"][0]["status"] == "cannot-host"


@pytest.mark.slow
def test_pywin32_pth_makes_its_modules_importable_under_wine(runtime_env) -> None:  # type: ignore[no-untyped-def]
    """pywin32's .pth adds win32, win32\\lib and Pythonwin to sys.path and bootstraps its DLL folder: with the
    site folder added as a site dir, win32api and win32ui import (and dde, after win32ui)."""
    from pipeline.smoke import smoke_wheel

    need_toolset("wine")
    ensure_runtime("windows-cpython-3.11-amd64")
    result = smoke_wheel(_corpus_wheel("win_amd64", "3.11", "pywin32"), "win_amd64")
    assert {"win32api", "win32ui", "dde", "pythoncom", "win32com"} <= set(result.imported), result.to_json()


def test_a_harness_error_is_counted_failed_and_listed_with_its_wheel(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A wheel the harness cannot even set up (here: a target no catalogue knows) is a FAILED that names the
    wheel and target in the report, like any other result: it once had neither, and the report crashed."""
    from dataclasses import replace

    entry = replace(smoke_corpus.quick_entries(smoke_corpus.load_manifest())[0], target="no-such-target")
    result = smoke_corpus.smoke_one(entry)
    assert result["status"] == "failed" and str(result["message"]).startswith("smoke error: ")
    assert (result["wheel"], result["target"]) == (entry.filename, "no-such-target")
