"""bin/python3.X of a Windows runtime: pipeline/runtimes/_wine_python.py as windows_embed writes it (a copy
with the relay Python on its #! line, beside its facts as JSON). First with a stand-in for wine that reports
what it was handed (which standard streams are pipes, the environment, the arguments), then with the real
wine and the built runtime's python.exe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ensure_runtime
from pipeline.runtimes import _wine_python, get_runtime
from pipeline.runtimes.windows_embed import WindowsEmbedCPython, wine_executable, wine_prefix_dir

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="wine runs on Linux here")

DESKTOP = "windows-cpython-3.11-amd64"
NANOSERVER = "windows-cpython-3.11-amd64-nanoserver"

# Reports to $REPORT what it was started with, then upper-cases its stdin to stdout, writes to stderr and
# exits 3: what python.exe under wine would see of the wrapper.
FAKE_WINE = """#!/bin/sh
exec 3>"$REPORT"
for fd in 0 1 2; do
  if [ -p "/dev/fd/$fd" ]; then echo "fd$fd pipe" >&3; else echo "fd$fd not-a-pipe" >&3; fi
done
{
  echo "prefix $WINEPREFIX"
  echo "debug $WINEDEBUG"
  echo "overrides $WINEDLLOVERRIDES"
  echo "args $*"
} >&3
tr a-z A-Z
echo "to stderr" >&2
exit 3
"""


def _wrapper(name: str, folder: Path, wine: str) -> Path:
    runtime = get_runtime(name)
    assert isinstance(runtime, WindowsEmbedCPython)
    wrapper = folder / "bin" / f"python{runtime.python_version}"
    wrapper.parent.mkdir(parents=True)
    runtime._write_wrapper(wrapper, wine)
    (wrapper.parent / "python").symlink_to(wrapper.name)
    return wrapper


def _report(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_the_written_wrapper_is_the_module_with_the_relay_python_and_its_facts(tmp_path: Path) -> None:
    wrapper = _wrapper(NANOSERVER, tmp_path, "/usr/bin/wine")
    source = Path(_wine_python.__file__).read_text(encoding="utf-8")
    first, body = wrapper.read_text(encoding="utf-8").split("\n", 1)
    assert first == f"#!{Path(sys.executable).resolve()}" and body == source.split("\n", 1)[1]
    assert os.access(wrapper, os.X_OK)
    config = json.loads((wrapper.parent / _wine_python.CONFIG_NAME).read_text(encoding="utf-8"))
    runtime = get_runtime(NANOSERVER)
    assert config == {
        "name": NANOSERVER,
        "python": "3.11.9",
        "exe": str(runtime.root() / "python" / "python.exe"),
        "wine": "/usr/bin/wine",
        "prefix": str(wine_prefix_dir()),
        "disabled_dlls": list(runtime.disabled_dlls),  # type: ignore[attr-defined]
    }


def test_streams_that_are_files_reach_wine_as_pipes(tmp_path: Path) -> None:
    fake = tmp_path / "wine"
    fake.write_text(FAKE_WINE, encoding="utf-8")
    fake.chmod(0o755)
    wrapper = _wrapper(DESKTOP, tmp_path / "runtime", str(fake))
    report, stdin, out, err = (tmp_path / name for name in ("report", "in", "out", "err"))
    stdin.write_text("hello from a file\n", encoding="utf-8")
    env = {**os.environ, "REPORT": str(report), "WINEDLLOVERRIDES": "mshtml="}
    with stdin.open("rb") as source, out.open("wb") as sink, err.open("wb") as errors:
        # Through the python symlink, as smoke calls it: the facts are found beside the real file.
        code = subprocess.call(
            [str(wrapper.parent / "python"), "-c", "pass"], stdin=source, stdout=sink, stderr=errors, env=env
        )
    assert code == 3
    assert out.read_text(encoding="utf-8") == "HELLO FROM A FILE\n"
    assert err.read_text(encoding="utf-8") == "to stderr\n"
    exe = get_runtime(DESKTOP).root() / "python" / "python.exe"
    assert _report(report) == [
        "fd0 pipe",
        "fd1 pipe",
        "fd2 pipe",
        f"prefix {wine_prefix_dir()}",
        "debug -all",
        "overrides mshtml=;winedbg.exe=d",
        f"args {exe} -c pass",
    ]


def test_other_streams_are_handed_on_as_they_are(tmp_path: Path) -> None:
    fake = tmp_path / "wine"
    fake.write_text(FAKE_WINE, encoding="utf-8")
    fake.chmod(0o755)
    wrapper = _wrapper(NANOSERVER, tmp_path / "runtime", str(fake))
    report = tmp_path / "report"
    env = {k: v for k, v in os.environ.items() if k != "WINEDLLOVERRIDES"}
    done = subprocess.run(
        [str(wrapper)], stdin=subprocess.DEVNULL, capture_output=True, env={**env, "REPORT": str(report)}
    )
    assert (done.returncode, done.stdout, done.stderr) == (3, b"", b"to stderr\n")
    lines = _report(report)
    # /dev/null is no regular file: wine gets it as it is; the caller's pipes are pipes already.
    assert lines[:3] == ["fd0 not-a-pipe", "fd1 pipe", "fd2 pipe"]
    disabled = list(get_runtime(NANOSERVER).disabled_dlls)  # type: ignore[attr-defined]
    expected = ";".join(["winedbg.exe=d", *([",".join(disabled) + "="] if disabled else [])])
    assert lines[5] == f"overrides {expected}"


@pytest.mark.slow
def test_the_written_wrapper_runs_python_exe_under_wine_with_file_streams(
    runtime_env, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    runtime = ensure_runtime(DESKTOP)
    wine = wine_executable()
    assert wine, "the runtime is built, so wine is installed"
    wrapper = _wrapper(DESKTOP, tmp_path, wine)
    stdin, out = tmp_path / "in.txt", tmp_path / "out.txt"
    stdin.write_text("hello from a file\n", encoding="utf-8")
    program = "import sys; print(sys.stdin.read().upper().strip(), sys.version.split()[0], sys.platform)"
    with stdin.open("rb") as source, out.open("wb") as sink:
        code = subprocess.call(
            [str(wrapper), "-c", program], stdin=source, stdout=sink, stderr=subprocess.STDOUT, timeout=300
        )
    assert (code, out.read_text(encoding="utf-8").strip()) == (
        0,
        f"HELLO FROM A FILE {runtime.full_version} win32",
    )


def test_disabled_dlls_are_switched_off_after_the_callers_overrides() -> None:
    config = {"prefix": "/p", "disabled_dlls": ["user32", "gdi32"]}
    env = _wine_python.wine_environment(
        config, {"WINEDLLOVERRIDES": "mshtml=", "WINEDEBUG": "+all", "A": "1"}
    )
    assert env == {
        "A": "1",
        "WINEPREFIX": "/p",
        "WINEDEBUG": "-all",
        "WINEDLLOVERRIDES": "mshtml=;winedbg.exe=d;user32,gdi32=",
    }
    assert _wine_python.wine_environment({"prefix": "/p", "disabled_dlls": []}, {})["WINEDLLOVERRIDES"] == (
        "winedbg.exe=d"
    )


@pytest.mark.slow
def test_the_written_wrapper_runs_in_the_sandbox_as_smoke_binds_it(runtime_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from conftest import need_toolset
    from pipeline.sandbox import run_sandboxed
    from pipeline.smoke import WINE_FILE_SIZE, _sandbox_access

    need_toolset("sandbox")
    runtime = ensure_runtime(DESKTOP)
    wine = wine_executable()
    assert wine, "the runtime is built, so wine is installed"
    wrapper = _wrapper(DESKTOP, tmp_path / "runtime", wine)
    readable, writable, scratch = _sandbox_access(wrapper, tmp_path)
    # Smoke adds the runtime's own folders (the prefix) by its path; this copy lies elsewhere.
    (user_temp,) = runtime.sandbox_scratch()
    # %TEMP% is writable, as on every real Windows (pywin32's adodbapi writes its gen_py cache there at import),
    # and what is written there stays in the run: the prefix every Windows runtime shares is left as it was.
    # os.environ["TEMP"], not tempfile.gettempdir(), which falls back to any writable folder, as win32api's
    # GetTempPath does not.
    probe = "import os, sys; open(os.path.join(os.environ['TEMP'], 'rewheel-probe'), 'w').write('x')"
    done = run_sandboxed(
        [str(wrapper), "-c", probe + "; print(sys.version.split()[0])"],
        cwd=tmp_path,
        readable=[*readable, *runtime.sandbox_readable()],
        writable=writable,
        scratch=[*scratch, user_temp],
        timeout=300,
        file_size=WINE_FILE_SIZE,
    )
    assert (done.returncode, done.stdout.strip()) == (0, runtime.full_version), done.stderr
    assert not (user_temp / "rewheel-probe").exists()


@pytest.mark.parametrize(
    ("pythonpath", "first"),
    [
        ("/site/a:/site/b", ["/site/a", "/site/b"]),  # a Linux host's, as smoke sets it (wine maps it via Z:)
        ("C:\\site\\a;D:\\b", ["C:\\site\\a", "D:\\b"]),  # a Windows one
        ("/site/a;/site/b", ["/site/a", "/site/b"]),  # ';' wins wherever it occurs
        ("", []),
    ],
)
def test_the_embeddable_builds_sitecustomize_puts_pythonpath_first(pythonpath: str, first: list[str]) -> None:
    from pipeline.runtimes.windows_embed import SITECUSTOMIZE

    # -I: the interpreter itself ignores PYTHONPATH, as the embeddable build's ._pth makes python.exe do.
    program = f"import json, runpy, sys; runpy.run_path({str(SITECUSTOMIZE)!r}); print(json.dumps(sys.path))"
    done = subprocess.run(
        [sys.executable, "-I", "-c", program], capture_output=True, text=True, env={"PYTHONPATH": pythonpath}
    )
    assert done.returncode == 0, done.stderr
    path = json.loads(done.stdout)
    assert path[: len(first)] == first and len(path) == len(set(path))
