"""pipeline/smoke_importer.py, the program `rewheel smoke` runs inside a target's interpreter: run by path
with -S -s, as smoke runs it, on a tiny site folder, by this Python and by the oldest host CPython a target
uses (3.10), whose syntax it must keep."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import unavailable
from pipeline.smoke import IMPORTER


def _oldest_host_python() -> str:
    from pipeline.runtimes import get_runtime

    runtime = get_runtime("host-cpython-3.10-x86_64")
    if not runtime.exists():
        unavailable("no host CPython 3.10 here")
    return str(runtime.python())


@pytest.fixture(params=["this", "3.10"])
def python(request: pytest.FixtureRequest) -> str:
    return sys.executable if request.param == "this" else _oldest_host_python()


def _site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    (site / "pkg").mkdir(parents=True)
    (site / "pkg" / "__init__.py").write_text("VALUE = 1\n", encoding="utf-8")
    (site / "broken.py").write_text("import no_such_module_anywhere\n", encoding="utf-8")
    (site / "exits.py").write_text("raise SystemExit(3)\n", encoding="utf-8")
    # a .pth folder (pywin32's way): its modules import as top-level names
    (site / "extra").mkdir()
    (site / "extra" / "from_pth.py").write_text("", encoding="utf-8")
    (site / "extra.pth").write_text("extra\n", encoding="utf-8")
    # an extension for another platform: the loader's own verdict, not "no module named"
    (site / "pkg" / "_speedups.cpython-311-aarch64-linux-musl.so").write_bytes(b"not an ELF file")
    return site


def _run(python: str, site: Path, extensions: dict[str, str], *modules: str) -> list[dict[str, object]]:
    done = subprocess.run(
        [python, "-S", "-s", str(IMPORTER), str(site), json.dumps(extensions), *modules],
        capture_output=True,
        text=True,
        cwd=site.parent,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_each_module_is_reported_with_the_interpreters_words(python: str, tmp_path: Path) -> None:
    site = _site(tmp_path)
    extensions = {"pkg._speedups": "pkg/_speedups.cpython-311-aarch64-linux-musl.so"}
    reports = _run(python, site, extensions, "pkg", "from_pth", "broken", "exits", "pkg._speedups")
    assert [r["module"] for r in reports] == ["pkg", "from_pth", "broken", "exits", "pkg._speedups"]
    assert reports[0] == {"module": "pkg", "ok": True}
    assert reports[1] == {"module": "from_pth", "ok": True}
    assert reports[2]["ok"] is False
    assert reports[2]["error"] == "ModuleNotFoundError: No module named 'no_such_module_anywhere'"
    assert reports[3] == {"module": "exits", "ok": False, "error": "SystemExit: 3"}
    assert reports[4]["ok"] is False
    assert str(reports[4]["error"]).startswith("ImportError: ")
    assert "No module named" not in str(reports[4]["error"])


def test_the_wheel_goes_before_what_the_runtime_carries(python: str, tmp_path: Path) -> None:
    runtime_dir = tmp_path / "runtime"
    runtime_dir.mkdir()
    (runtime_dir / "shadowed.py").write_text("raise ImportError('the runtime copy')\n", encoding="utf-8")
    site = tmp_path / "site"
    site.mkdir()
    (site / "shadowed.py").write_text("", encoding="utf-8")
    done = subprocess.run(
        [python, "-S", "-s", str(IMPORTER), str(site), "{}", "shadowed"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(runtime_dir)},
    )
    assert json.loads(done.stdout) == {"module": "shadowed", "ok": True}


def test_the_main_function_is_the_program(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline import smoke_importer

    site = tmp_path / "site"
    site.mkdir()
    (site / "plain_module_for_main.py").write_text("", encoding="utf-8")
    saved = list(sys.path)
    try:
        assert smoke_importer.main([str(site), "{}", "plain_module_for_main"]) == 0
    finally:
        sys.path[:] = saved
        sys.modules.pop("plain_module_for_main", None)
    assert json.loads(capsys.readouterr().out) == {"module": "plain_module_for_main", "ok": True}
