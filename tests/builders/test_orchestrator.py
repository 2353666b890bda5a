"""`rewheel build` end to end with real components: the pinned MarkupSafe sdist cross-built by the zig backend,
repaired by auditwheel, checked by the symbol checker, imported on the target; a pinned pip wheel re-packed by
the wheel-source backend. One session-scoped run builds everything once; the tests read its results and make
cheap copies of its wheelhouse for the incremental cases.

The recipes are written here, next to their patches, so each test states exactly what it builds:
- markupsafe: a source patch adds REWHEEL_MARKER to the Python package and to the C extension (proof that
  the compiled code came from the patched tree), manylinux_2_17_x86_64, which this host can import natively.
- markupsafe-glibc-only: a source patch makes the extension call gnu_get_libc_version, which musl does not
  export; built for musllinux_1_2_x86_64 it links and repairs, and musl's loader would refuse it ("Error
  relocating ... symbol not found"): the symbol checker must catch it, so the wheel lands in quarantine.
- markupsafe-stale: a patch whose context is not in the sdist: the job fails in prepare, the others do not.
- pip: the project's own pip patch (patches/pip/) on one pinned pip wheel.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO

MARKUPSAFE = (
    "MarkupSafe",
    "2.1.5",
    "MarkupSafe-2.1.5.tar.gz",
    "d283d37a890ba4c1ae73ffadf8046435c76e7bc2247bbb63c00bd1a709c6544b",
)
PIP = (
    "pip",
    "23.2.1",
    "pip-23.2.1-py3-none-any.whl",
    "7ccf472345f20d35bdc9d1841ff5f313260c2c33fe417f48c30ac46cccabf5be",
)

MARKER_PATCH = """\
Add a marker to the Python package and to the C extension (rewheel's build tests look for both).

--- a/src/markupsafe/__init__.py
+++ b/src/markupsafe/__init__.py
@@ -14,6 +14,7 @@
_
_
 __version__ = "2.1.5"
+REWHEEL_MARKER = "source-patched"
_
_
 def _simple_escaping_wrapper(func: "t.Callable[_P, str]") -> "t.Callable[_P, Markup]":
--- a/src/markupsafe/_speedups.c
+++ b/src/markupsafe/_speedups.c
@@ -313,8 +313,15 @@
 PyMODINIT_FUNC
 PyInit__speedups(void)
 {
+\tPyObject *module;
+
 \tif (!init_constants())
 \t\treturn NULL;
_
-\treturn PyModule_Create(&module_definition);
+\tmodule = PyModule_Create(&module_definition);
+\tif (module != NULL && PyModule_AddStringConstant(module, "REWHEEL_MARKER", "source-patched") < 0) {
+\t\tPy_DECREF(module);
+\t\treturn NULL;
+\t}
+\treturn module;
 }
"""

GLIBC_ONLY_PATCH = """\
Call a glibc-only function from the extension's init (musl does not export gnu_get_libc_version).

--- a/src/markupsafe/_speedups.c
+++ b/src/markupsafe/_speedups.c
@@ -310,9 +310,14 @@
 \tNULL
 };
_
+/* glibc-only: musl does not export gnu_get_libc_version, so musl's loader refuses this module */
+extern const char *gnu_get_libc_version(void);
+
 PyMODINIT_FUNC
 PyInit__speedups(void)
 {
+\tif (gnu_get_libc_version() == NULL)
+\t\treturn NULL;
 \tif (!init_constants())
 \t\treturn NULL;
_
"""

STALE_PATCH = """\
Context that MarkupSafe 2.1.5 does not have: must fail loudly, naming the file and the hunk.

--- a/src/markupsafe/__init__.py
+++ b/src/markupsafe/__init__.py
@@ -14,6 +14,7 @@
_
_
 __version__ = "2.0.0"
+REWHEEL_MARKER = "never"
_
_
 def _simple_escaping_wrapper(func: "t.Callable[_P, str]") -> "t.Callable[_P, Markup]":
"""


def blank_context(text: str) -> str:
    """The patch constants spell a blank context line (one space) as "_" so the source has no trailing spaces."""
    return re.sub(r"(?m)^_$", " ", text)


MARKER_PATCH, GLIBC_ONLY_PATCH, STALE_PATCH = map(
    blank_context, (MARKER_PATCH, GLIBC_ONLY_PATCH, STALE_PATCH)
)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def markupsafe_recipe(name: str, target: str, patch_file: str, patch_text: str, extra: str = "") -> str:
    project, version, filename, sha = MARKUPSAFE
    return f"""\
name = "{name}"
targets = ["{target}"]
python = ["3.11"]

[[source]]
version = "{version}"
kind = "sdist"
project = "{project}"
filename = "{filename}"
sha256 = "{sha}"

[[patch]]
file = "{patch_file}"
sha256 = "{sha256_text(patch_text)}"

[test]
imports = ["markupsafe", "markupsafe._speedups"]
{extra}"""


def pip_recipe(patch_sha: str, extra: str = "") -> str:
    _, version, filename, sha = PIP
    return f"""\
name = "pip"
targets = ["any"]

[[source]]
version = "{version}"
kind = "wheel"
filename = "{filename}"
sha256 = "{sha}"
build-tag = "1rewheel"

[[patch]]
file = "0001-guard-ctypes-cdll-none.patch"
sha256 = "{patch_sha}"
stage = "wheel"

[test]
imports = ["pip"]
{extra}"""


def write_project(root: Path) -> Path:
    recipes = root / "recipes"
    recipes.mkdir(parents=True)
    for name, target, patch_file, text in [
        ("markupsafe", "manylinux_2_17_x86_64", "0001-marker.patch", MARKER_PATCH),
        (
            "markupsafe-glibc-only",
            "musllinux_1_2_x86_64",
            "0001-call-glibc-only-function.patch",
            GLIBC_ONLY_PATCH,
        ),
        ("markupsafe-stale", "manylinux_2_17_x86_64", "0001-stale-context.patch", STALE_PATCH),
    ]:
        (recipes / f"{name}.toml").write_text(
            markupsafe_recipe(name, target, patch_file, text), encoding="utf-8"
        )
        (root / "patches" / name).mkdir(parents=True)
        (root / "patches" / name / patch_file).write_text(text, encoding="utf-8")
    pip_patch = REPO / "patches" / "pip" / "0001-guard-ctypes-cdll-none.patch"
    (root / "patches" / "pip").mkdir(parents=True)
    shutil.copyfile(pip_patch, root / "patches" / "pip" / pip_patch.name)
    (recipes / "pip.toml").write_text(pip_recipe(sha256_text(pip_patch.read_text())), encoding="utf-8")
    return root


def jobs_for(root: Path, *names: str):  # type: ignore[no-untyped-def]
    from pipeline.plan import plan
    from pipeline.recipe import load_recipes

    paths = [root / "recipes" / f"{n}.toml" for n in names] if names else [root / "recipes"]
    return plan(load_recipes(paths))


@dataclass
class FirstRun:
    root: Path
    wheelhouse: Path
    summary: object
    seconds: float

    def outcome(self, recipe: str):  # type: ignore[no-untyped-def]
        return next(o for o in self.summary.outcomes if o.job.recipe.name == recipe)  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def first_run(tmp_path_factory: pytest.TempPathFactory, pypi_file) -> FirstRun:  # type: ignore[no-untyped-def]
    """Every job once, with --backend auto and no container engine allowed, as on a fresh machine."""
    pypi_file(*MARKUPSAFE)
    pypi_file(*PIP)
    root = write_project(tmp_path_factory.mktemp("build-project"))
    wheelhouse = root / "wheelhouse"
    from pipeline.builders.orchestrator import run_jobs

    saved = os.environ.get("REWHEEL_CONTAINER_ENGINE")
    os.environ["REWHEEL_CONTAINER_ENGINE"] = "none"  # auto must fall back to zig without asking docker/podman
    try:
        started = time.monotonic()
        summary = run_jobs(jobs_for(root), wheelhouse=wheelhouse, work_root=root / "work")
        seconds = time.monotonic() - started
    finally:
        if saved is None:
            os.environ.pop("REWHEEL_CONTAINER_ENGINE")
        else:
            os.environ["REWHEEL_CONTAINER_ENGINE"] = saved
    print(f"\nfirst build run: {seconds:.1f} s", file=sys.stderr)
    return FirstRun(root, wheelhouse, summary, seconds)


def copy_of(first_run: FirstRun, tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the project and its wheelhouse (records included) to change without side effects."""
    root = tmp_path / "project"
    shutil.copytree(first_run.root, root, ignore=shutil.ignore_patterns("work"))
    return root, root / "wheelhouse"


def test_patched_sdist_built_by_zig_imports_with_the_marker(first_run: FirstRun) -> None:
    outcome = first_run.outcome("markupsafe")
    assert outcome.status == "built", outcome.message
    assert outcome.backend == "zig"
    assert "container engine" in outcome.reason
    [wheel] = outcome.wheels
    assert wheel.parent == first_run.wheelhouse
    assert wheel.name.startswith("markupsafe-2.1.5-cp311-cp311-") and "manylinux" in wheel.name
    for installed in (wheel, wheel.with_name(wheel.name + ".build.json")):
        assert installed.stat().st_mode & 0o044 == 0o044  # readable by a web server serving the wheelhouse
    with zipfile.ZipFile(wheel) as archive:
        assert 'REWHEEL_MARKER = "source-patched"' in archive.read("markupsafe/__init__.py").decode()
    site = first_run.root / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    # This host is glibc x86_64 with CPython 3.11: the manylinux_2_17 wheel must import here, C marker included.
    probe = "import markupsafe, markupsafe._speedups as s; print(markupsafe.REWHEEL_MARKER, s.REWHEEL_MARKER)"
    result = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); {probe}"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["source-patched", "source-patched"]


def test_a_failing_job_names_its_patch_and_spares_the_others(first_run: FirstRun) -> None:
    summary = first_run.summary
    stale = first_run.outcome("markupsafe-stale")
    assert not summary.ok  # type: ignore[attr-defined]
    assert stale.status == "failed" and stale.stage == "prepare"
    assert "0001-stale-context.patch" in stale.message and "hunk" in stale.message
    assert stale.work_dir is not None and stale.work_dir.is_dir()  # kept for the logs
    failed = {o.job.id for o in summary.failed}  # type: ignore[attr-defined]
    assert failed == {stale.job.id, first_run.outcome("markupsafe-glibc-only").job.id}
    # The jobs after it in plan order ran and installed their wheels.
    assert first_run.outcome("pip").status == "built"
    assert all(w.is_file() for w in first_run.outcome("markupsafe").wheels + first_run.outcome("pip").wheels)


def test_a_wheel_failing_verify_goes_to_quarantine_with_its_report(first_run: FirstRun) -> None:
    outcome = first_run.outcome("markupsafe-glibc-only")
    assert outcome.status == "quarantined", outcome.message
    assert outcome.stage == "verify"
    [wheel] = outcome.wheels
    assert wheel.parent == first_run.wheelhouse / "quarantine"
    assert "musllinux" in wheel.name
    assert not (first_run.wheelhouse / wheel.name).exists()
    report = json.loads(wheel.with_name(wheel.name + ".verify.json").read_text())
    [result] = report["results"]
    assert result["ok"] is False and result["target"] == "musllinux_1_2_x86_64"
    symbols = {f.get("symbol") for f in result["findings"] if f["severity"] == "error"}
    assert "gnu_get_libc_version" in symbols
    assert "failed verify" in outcome.message
    assert report["smoke"]["status"] == "skipped"  # never run a wheel the checker rejected


def test_build_record_names_inputs_tools_and_results(first_run: FirstRun) -> None:
    from pipeline.util import sha256_file

    outcome = first_run.outcome("markupsafe")
    [wheel] = outcome.wheels
    record = json.loads(wheel.with_name(wheel.name + ".build.json").read_text())
    assert record["wheel"] == {
        "filename": wheel.name,
        "sha256": sha256_file(wheel),
        "size": wheel.stat().st_size,
    }
    assert record["job"]["id"] == outcome.job.id
    assert record["inputs"]["source"]["sha256"] == MARKUPSAFE[3]
    [patch] = record["inputs"]["patches"]
    assert patch == {
        "file": "0001-marker.patch", "sha256": sha256_text(MARKER_PATCH), "stage": "source", "strip": 1,
        "applied_by": "prepare",
    }  # fmt: skip
    assert record["inputs"]["recipe"]["sha256"] == sha256_file(first_run.root / "recipes" / "markupsafe.toml")
    assert record["backend"]["name"] == "zig" and record["backend"]["reason"]
    assert record["tool_versions"]["auditwheel"][0].isdigit()
    assert any("auditwheel" in " ".join(c) for c in record["commands"])
    assert record["verify"]["ok"] is True
    assert record["smoke"]["status"] in ("passed", "cannot-host", "not-run", "error")
    assert set(record["timings"]) >= {"select", "prepare", "build", "repair", "verify", "smoke"}
    assert record["timings"]["build"] > 0
    assert record["features_disabled"] == []
    assert record["job_wheels"] == [wheel.name]
    assert len(record["key"]) == 64


def test_smoke_imported_the_native_wheel(first_run: FirstRun) -> None:
    [smoke] = first_run.outcome("markupsafe").smoke
    assert smoke.status == "passed", smoke


def test_job_results_keep_their_json_shape(first_run: FirstRun, tmp_path: Path, run_cli, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The run's JSON (built with a smoke result, quarantined with smoke skipped, failed, re-packed) and a no-op
    `rewheel build --json` (smoke read back from the records) keep the keys and types captured before the
    results became dataclasses."""
    from helpers.job_json import JOB_SHAPE, NOT_RUN_SHAPE, SMOKE_RESULT_SHAPE, assert_shape

    def jobs(data: dict) -> dict[str, dict]:  # type: ignore[type-arg]
        for job in data["jobs"]:
            assert_shape(job, JOB_SHAPE)
            for smoke in job["smoke"]:
                assert_shape(smoke, SMOKE_RESULT_SHAPE if "wheel" in smoke else NOT_RUN_SHAPE)
        return {job["recipe"]: job for job in data["jobs"]}

    first = jobs(json.loads(json.dumps(first_run.summary.to_json())))  # type: ignore[attr-defined]
    assert first["markupsafe"]["smoke"][0]["status"] == "passed"
    assert first["markupsafe-glibc-only"]["smoke"] == [
        {"status": "skipped", "runtime": None, "message": "verify failed"}
    ]
    assert first["markupsafe-stale"]["smoke"] == [] and first["markupsafe-stale"]["stage"] == "prepare"
    root, wheelhouse = copy_of(first_run, tmp_path)
    monkeypatch.setenv("REWHEEL_CONTAINER_ENGINE", "none")
    recipes = [str(root / "recipes" / f"{n}.toml") for n in ("markupsafe", "pip")]
    code, out, _ = run_cli("build", *recipes, "--wheelhouse", str(wheelhouse), "--json")
    assert code == 0
    again = jobs(json.loads(out))
    assert again["markupsafe"]["status"] == "up-to-date"
    assert again["markupsafe"]["smoke"] == first["markupsafe"]["smoke"]  # the record's smoke, key for key


def test_noop_run_skips_every_job(first_run: FirstRun) -> None:
    from pipeline.builders.orchestrator import run_jobs

    jobs = jobs_for(first_run.root, "markupsafe", "pip")
    started = time.monotonic()
    summary = run_jobs(jobs, wheelhouse=first_run.wheelhouse, work_root=first_run.root / "work")
    seconds = time.monotonic() - started
    print(f"\nno-op run_jobs over {len(jobs)} jobs: {seconds * 1000:.0f} ms", file=sys.stderr)
    assert [o.status for o in summary.outcomes] == ["up-to-date", "up-to-date"]
    assert summary.wheels == first_run.outcome("markupsafe").wheels + first_run.outcome("pip").wheels


def test_noop_cli_run_is_fast(first_run: FirstRun, rewheel_exe: list[str]) -> None:
    import resource

    recipes = [str(first_run.root / "recipes" / f"{n}.toml") for n in ("markupsafe", "pip")]
    command = [*rewheel_exe, "build", *recipes, "--wheelhouse", str(first_run.wheelhouse), "--json"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    result = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "REWHEEL_CONTAINER_ENGINE": "none"}
    )
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(
        f"\nno-op `rewheel build` process: {seconds * 1000:.0f} ms wall, {cpu * 1000:.0f} ms CPU",
        file=sys.stderr,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] is True and {j["status"] for j in data["jobs"]} == {"up-to-date"}


def test_changed_patch_rebuilds_only_that_job(first_run: FirstRun, tmp_path: Path) -> None:
    from pipeline.builders.orchestrator import run_jobs

    root, wheelhouse = copy_of(first_run, tmp_path)
    patch = root / "patches" / "pip" / "0001-guard-ctypes-cdll-none.patch"
    patch.write_text("Re-reviewed for rewheel's incremental build test.\n" + patch.read_text())
    recipe = root / "recipes" / "pip.toml"
    recipe.write_text(pip_recipe(sha256_text(patch.read_text())))
    old_record = json.loads(
        (wheelhouse / first_run.outcome("pip").wheels[0].name).with_suffix(".whl.build.json").read_text()
    )

    summary = run_jobs(
        jobs_for(root, "markupsafe", "pip"),
        wheelhouse=wheelhouse,
        work_root=tmp_path / "work",
    )
    statuses = {o.job.recipe.name: o.status for o in summary.outcomes}
    assert statuses == {"markupsafe": "up-to-date", "pip": "built"}
    [wheel] = next(o for o in summary.outcomes if o.job.recipe.name == "pip").wheels
    new_record = json.loads(wheel.with_name(wheel.name + ".build.json").read_text())
    assert new_record["key"] != old_record["key"]
    assert new_record["inputs"]["patches"][0]["sha256"] == sha256_text(patch.read_text())


def test_a_smoke_waiting_for_its_runtime_does_not_hold_up_the_next_build(
    first_run: FirstRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #26, the pipelined run: a job's smoke may wait minutes for its runtime (built in the background
    on a cold machine). Here the first job's smoke waits until the second job has been built: that only ends
    well when the second job builds while the first one's smoke waits. A run that smokes each job before
    building the next would wait out the timeout and fail the assertion."""
    from pipeline.builders import orchestrator

    root, wheelhouse = copy_of(first_run, tmp_path)
    first, second = jobs_for(root, "markupsafe", "pip")
    second_built = threading.Event()
    real_build, real_smoke = orchestrator._build_job, orchestrator._smoke
    smoke_saw_second_built: list[bool] = []

    def build_job(job, run, counter):  # type: ignore[no-untyped-def]
        step = real_build(job, run, counter)
        if job is second:
            second_built.set()
        return step

    def smoke(wheel, job, run):  # type: ignore[no-untyped-def]
        if job is first:
            smoke_saw_second_built.append(second_built.wait(timeout=120))
        return real_smoke(wheel, job, run)

    monkeypatch.setattr(orchestrator, "_build_job", build_job)
    monkeypatch.setattr(orchestrator, "_smoke", smoke)
    summary = orchestrator.run_jobs(
        [first, second], wheelhouse=wheelhouse, work_root=tmp_path / "work", force=True
    )
    assert smoke_saw_second_built == [True]
    assert [o.job for o in summary.outcomes] == [first, second]  # the run's order, whatever finished first
    assert [o.status for o in summary.outcomes] == ["built", "built"], [o.message for o in summary.outcomes]
    assert [s.status for o in summary.outcomes for s in o.smoke] == ["passed", "passed"]
    assert all(w.is_file() for o in summary.outcomes for w in o.wheels)


def test_changed_recipe_or_damaged_wheel_rebuilds(first_run: FirstRun, tmp_path: Path) -> None:
    from pipeline.builders.orchestrator import run_jobs

    root, wheelhouse = copy_of(first_run, tmp_path)
    # A recipe change that only matters to this job's smoke test still changes its key.
    recipe = root / "recipes" / "pip.toml"
    recipe.write_text(recipe.read_text().replace('imports = ["pip"]', 'imports = ["pip", "pip._internal"]'))
    summary = run_jobs(jobs_for(root, "pip"), wheelhouse=wheelhouse, work_root=tmp_path / "work")
    assert [o.status for o in summary.outcomes] == ["built"]
    summary = run_jobs(jobs_for(root, "pip"), wheelhouse=wheelhouse, work_root=tmp_path / "work")
    assert [o.status for o in summary.outcomes] == ["up-to-date"]
    # A wheel whose bytes no longer match its record is rebuilt, not trusted.
    [wheel] = summary.outcomes[0].wheels
    data = bytearray(wheel.read_bytes())
    data[-30] ^= 0xFF
    wheel.write_bytes(bytes(data))
    summary = run_jobs(jobs_for(root, "pip"), wheelhouse=wheelhouse, work_root=tmp_path / "work")
    assert [o.status for o in summary.outcomes] == ["built"]
    assert zipfile.ZipFile(summary.outcomes[0].wheels[0]).testzip() is None


def test_recipe_change_misses_the_key_of_a_compiled_job(first_run: FirstRun) -> None:
    from pipeline.builders.orchestrator import BackendSelector
    from pipeline.builders.records import RecordIndex, job_key, job_key_inputs
    from pipeline.recipe import parse_recipe

    [job] = jobs_for(first_run.root, "markupsafe")
    backend = BackendSelector().load("zig")
    assert not isinstance(backend, str)
    key = job_key(job_key_inputs(job, "zig", backend.fingerprint(job)))
    index = RecordIndex(first_run.wheelhouse)
    assert index.up_to_date(job.id, key, need_smoke=True) == first_run.outcome("markupsafe").wheels
    path = first_run.root / "recipes" / "markupsafe.toml"
    changed = parse_recipe(path.read_text() + '\n[build.environment]\nCFLAGS_EXTRA = "-DNDEBUG"\n', path)
    from pipeline.plan import plan

    [changed_job] = plan([changed])
    assert changed_job.id == job.id
    changed_key = job_key(job_key_inputs(changed_job, "zig", backend.fingerprint(changed_job)))
    assert changed_key != key
    assert index.up_to_date(job.id, changed_key, need_smoke=True) is None


def test_cli_names_failed_jobs_and_exits_1(first_run: FirstRun, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    root, wheelhouse = copy_of(first_run, tmp_path)
    code, out, err = run_cli(
        "build", str(root / "recipes" / "markupsafe-stale.toml"), str(root / "recipes" / "pip.toml"),
        "--wheelhouse", str(wheelhouse),
    )  # fmt: skip
    assert code == 1
    assert "markupsafe-stale-2.1.5-manylinux_2_17_x86_64-3.11" in err
    assert "up-to-date" in out and "failed (prepare)" in out
    assert "Traceback" not in out + err
    # Run it again: the failed job's work dir is kept for its logs, but only the latest attempt's.
    code, _, _ = run_cli(
        "build", str(root / "recipes" / "markupsafe-stale.toml"), "--wheelhouse", str(wheelhouse)
    )
    from pipeline.builders.orchestrator import FAILED_MARKER
    from pipeline.paths import cache_root

    # (finished attempts carry the marker; an unmarked dir may be another run's live build on the shared cache)
    kept = list((cache_root() / "build-work").glob("markupsafe-stale-2.1.5-manylinux_2_17_x86_64-3.11-*"))
    assert code == 1 and len([k for k in kept if (k / FAILED_MARKER).is_file()]) == 1


def test_cli_refuses_a_backend_that_cannot_build_the_job(
    first_run: FirstRun, tmp_path: Path, run_cli
) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run_cli(
        "build", str(first_run.root / "recipes" / "markupsafe.toml"), "--backend", "wheel-source",
        "--wheelhouse", str(tmp_path / "wh"), "--json",
    )  # fmt: skip
    assert code == 1
    [job] = json.loads(out)["jobs"]
    assert job["stage"] == "select" and "wheel-source only re-packs wheel sources" in job["message"]


def test_auto_selection_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.builders.orchestrator import BackendUnavailable, select_backend
    from pipeline.plan import Job
    from pipeline.recipe import parse_recipe

    monkeypatch.setenv("REWHEEL_CONTAINER_ENGINE", "none")
    path = Path("/nonexistent/recipes/demo.toml")
    _, version, filename, sha = MARKUPSAFE
    recipe = parse_recipe(
        f'name = "demo"\ntargets = ["manylinux_2_17_ppc64le", "musllinux_1_2_aarch64"]\n'
        f'[[source]]\nversion = "{version}"\nkind = "sdist"\nfilename = "{filename}"\nsha256 = "{sha}"\n',
        path,
    )
    try:
        backend, reason = select_backend(Job(recipe, version, "musllinux_1_2_aarch64", "3.11"), "auto")
    except BackendUnavailable as exc:
        pytest.fail(f"zig should build musllinux_1_2_aarch64 here: {exc}")
    assert backend.name == "zig" and "container engine" in reason
    # zig builds x86_64/aarch64 Linux and Windows; ppc64le needs cibuildwheel's container under QEMU.
    with pytest.raises(BackendUnavailable) as error:
        select_backend(Job(recipe, version, "manylinux_2_17_ppc64le", "3.11"), "auto")
    message = str(error.value)
    assert "cibuildwheel:" in message and "zig:" in message and "\n" not in message


def test_cli_publishes_the_run_wheels_to_a_static_index(first_run: FirstRun, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    root, wheelhouse = copy_of(first_run, tmp_path)
    index = tmp_path / "index"
    code, out, err = run_cli(
        "build", str(root / "recipes" / "pip.toml"), "--wheelhouse", str(wheelhouse), "--publish", str(index), "--json",
    )  # fmt: skip
    assert code == 0, err
    [published] = json.loads(out)["published"]
    [wheel] = first_run.outcome("pip").wheels
    assert [f["filename"] for f in published["files"]] == [wheel.name]
    assert wheel.name in (index / "simple" / "pip" / "index.html").read_text()
    # A run with a failed job publishes nothing.
    code, _, err = run_cli(
        "build", str(root / "recipes" / "markupsafe-stale.toml"), "--wheelhouse", str(wheelhouse),
        "--publish", str(tmp_path / "index2"),
    )  # fmt: skip
    assert code == 1 and "not published" in err
    assert not (tmp_path / "index2").exists()


def test_cli_prints_the_cibuildwheel_config_of_each_job(run_cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run_cli(
        "build", str(REPO / "recipes" / "markupsafe.toml"), "--target", "musllinux_1_2_x86_64", "--python", "3.11",
        "--print-cibuildwheel-config", "--json",
    )  # fmt: skip
    assert code == 0, err
    [job] = json.loads(out)["jobs"]
    assert job["job"] == "markupsafe-2.1.5-musllinux_1_2_x86_64-3.11"
    assert job["config"]["CIBW_BUILD"] == "cp311-musllinux_x86_64"


def test_a_live_work_dir_of_the_same_job_is_not_forgotten(tmp_path: Path) -> None:
    """The cache is shared: another run building the same job right now keeps its work dir; only finished
    (failed) attempts are cleared."""
    from pipeline.builders.orchestrator import FAILED_MARKER, _forget_older_work_dirs

    class _Job:
        id = "demo-1.0-musllinux_1_2_x86_64-3.11"

    live, failed, current = (
        tmp_path / f"{_Job.id}-{suffix}" for suffix in ("aaaaaaaa", "bbbbbbbb", "cccccccc")
    )
    for folder in (live, failed, current):
        folder.mkdir()
    (failed / FAILED_MARKER).write_text("failed\n")
    _forget_older_work_dirs(tmp_path, _Job(), current)  # type: ignore[arg-type]
    assert live.is_dir() and current.is_dir() and not failed.exists()
