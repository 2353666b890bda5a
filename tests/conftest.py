"""Shared fixtures: pinned real artefacts from PyPI (cached by hash), tools the tests need, and the rule
that CI never skips the real path silently.

Downloads go through rewheel's own fetch layer into REWHEEL_TEST_CACHE (default: REWHEEL_CACHE_DIR, else the
user cache; when set it is REWHEEL_CACHE_DIR for the session too), so a second run is quick and every artefact
is verified by sha256 before a test sees it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import MissingTool

REPO = Path(__file__).resolve().parent.parent
MUSL_DYNAMIC = "musl-cpython-3.11-x86_64"
MUSL_STATIC = "musl-cpython-3.11-x86_64-static"
ARM64 = "debian-arm64-python3.11"
MUSL_AARCH64 = "musl-cpython-3.11-aarch64"
MUSL_313 = "musl-cpython-3.13-x86_64"
MUSL_313_AARCH64 = "musl-cpython-3.13-aarch64"
ARM64_313 = "debian-arm64-python3.13"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# One cache for the whole session: when REWHEEL_TEST_CACHE is set it is also the cache root the stages use
# (REWHEEL_CACHE_DIR), so an empty test cache is really empty - downloads, runtimes and podman images alike.
if os.environ.get("REWHEEL_TEST_CACHE"):
    os.environ["REWHEEL_CACHE_DIR"] = os.environ["REWHEEL_TEST_CACHE"]


def _shared_cache() -> Path:
    configured = os.environ.get("REWHEEL_TEST_CACHE")
    if configured:
        return Path(configured)
    from pipeline.paths import cache_root

    return cache_root()


@pytest.fixture(scope="session")
def shared_cache() -> Path:
    """The persistent cache tests may use for downloads and built runtimes (survives between runs)."""
    path = _shared_cache()
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def pypi_file(shared_cache: Path):
    """pypi_file(project, version, filename, sha256) -> Path of the verified, cached file."""
    from pipeline.fetch import Pin, fetch

    def get(project: str, version: str, filename: str, sha256: str) -> Path:
        return fetch(
            Pin(filename=filename, sha256=sha256, project=project, version=version), shared_cache / "sha256"
        )

    return get


def unavailable(reason: str) -> None:
    """Skip a test whose real tool is missing; in CI that is a failure, because CI must run the real path.

    Set REWHEEL_ALLOW_SKIP=1 to let CI skip anyway (for a deliberately reduced run)."""
    if IN_CI and os.environ.get("REWHEEL_ALLOW_SKIP") != "1":
        pytest.fail(f"CI must run this test but cannot: {reason}")
    pytest.skip(reason)


def need_toolset(*names: str) -> None:
    """Install the named toolsets (pipeline/resources/system-packages.toml) or fail/skip naming what is missing."""
    from pipeline.system_packages import ensure_toolset

    try:
        ensure_toolset(*names)
    except MissingTool as exc:
        unavailable(str(exc))


def need_executable(name: str, hint: str) -> str:
    path = shutil.which(name)
    if not path:
        unavailable(f"{name} not found on PATH ({hint})")
    assert path
    return path


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """Run `rewheel ARGS` in-process; returns (exit code, stdout, stderr)."""
    from pipeline.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()  # only this command's output: not the progress lines of the test's own calls before
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def rewheel_exe() -> list[str]:
    """How to run the CLI as a separate process (the same interpreter as the tests)."""
    return [sys.executable, "-m", "pipeline"]


def ensure_runtime(name: str):  # type: ignore[no-untyped-def]
    """The runtime called `name`, built first if needed (cached across runs, so only a cold machine pays).

    A test that needs a target runtime builds it rather than skipping: a skip would hide the real path on a
    fresh CI machine, where no runtime exists until some test builds it."""
    from pipeline.errors import RewheelError
    from pipeline.runtimes import get_runtime

    runtime = get_runtime(name)
    if runtime.exists():
        return runtime
    if name.startswith("musl-"):
        need_toolset("musl")
    if "arm64" in name or "aarch64" in name:
        need_toolset("qemu")
    elif name.startswith("windows-"):
        need_toolset("wine")
    reason = runtime.unavailable_reason()
    if reason:
        unavailable(f"{name}: {reason}")
    try:
        runtime.build()
    except RewheelError as exc:
        unavailable(f"{name} could not be built: {exc}")
    assert runtime.exists(), f"{name} reported a finished build but does not exist"
    return runtime


@pytest.fixture(scope="session")
def six_wheel(pypi_file) -> Path:  # type: ignore[no-untyped-def]
    """six 1.16.0, a small pure wheel (pinned in tests/helpers/index.py)."""
    from helpers.index import SIX

    return pypi_file(*SIX)


@pytest.fixture(scope="session")
def markupsafe_wheel(pypi_file) -> Path:  # type: ignore[no-untyped-def]
    """MarkupSafe 2.1.5 cp311 manylinux x86_64, a small real binary wheel (pinned in tests/helpers/index.py)."""
    from helpers.index import MARKUPSAFE

    return pypi_file(*MARKUPSAFE)


@pytest.fixture(scope="session")
def runtime_env(shared_cache: Path):  # type: ignore[no-untyped-def]
    """REWHEEL_CACHE_DIR pointed at the shared cache for the whole session, so runtimes built by one test (or
    by the CLI in a subprocess) are the ones every other test finds."""
    patcher = pytest.MonkeyPatch()
    patcher.setenv("REWHEEL_CACHE_DIR", str(shared_cache))
    yield patcher
    patcher.undo()


@pytest.fixture(scope="session")
def musl_dynamic(runtime_env: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    return ensure_runtime(MUSL_DYNAMIC)


@pytest.fixture(scope="session")
def musl_static(runtime_env: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    return ensure_runtime(MUSL_STATIC)


@pytest.fixture(scope="session")
def arm64(runtime_env: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    return ensure_runtime(ARM64)


@pytest.fixture(scope="session")
def musl_aarch64(runtime_env: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    return ensure_runtime(MUSL_AARCH64)


@pytest.fixture(scope="session")
def musl_313(runtime_env: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    return ensure_runtime(MUSL_313)


@pytest.fixture(scope="session")
def musl_313_aarch64(runtime_env: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    return ensure_runtime(MUSL_313_AARCH64)


@pytest.fixture(scope="session")
def arm64_313(runtime_env: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    return ensure_runtime(ARM64_313)


@pytest.fixture(scope="session")
def zig_windows(runtime_env):  # type: ignore[no-untyped-def]
    """What a zig build of a Windows wheel and its import under wine need: ziglang, wine, the 3.11 runtime."""
    try:
        import ziglang  # noqa: F401
    except ImportError:
        unavailable("the zig backend needs the ziglang package (pip install 'rewheel[zig]')")
    need_toolset("wine")
    ensure_runtime("windows-cpython-3.11-amd64")
    return True


def zig_build_job(recipe: Path, target: str, wheelhouse: Path, python: str = "3.11") -> dict:  # type: ignore[type-arg]
    """`rewheel build RECIPE --backend zig` for one target and Python; the run must succeed, and its one job
    (recipe with one source) is returned from the --json summary."""
    completed = subprocess.run(
        [sys.executable, "-m", "pipeline", "build", str(recipe), "--target", target, "--python", python,
         "--backend", "zig", "--wheelhouse", str(wheelhouse), "--json"],
        capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    assert completed.stdout, completed.stderr[-3000:]
    summary: dict = json.loads(completed.stdout)  # type: ignore[type-arg]
    assert summary["ok"], (summary, completed.stderr[-3000:])
    (job,) = summary["jobs"]
    return job  # type: ignore[no-any-return]
