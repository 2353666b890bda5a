"""The GitHub Actions workflows are checked here, since CI cannot run them on GitHub from this machine:
actionlint (with shellcheck over every `run:` script), the GitHub workflow JSON schema (offline), every
action pinned by commit SHA, least-privilege permissions, the workflows' `rewheel` command lines against
the real CLI, and the plan -> matrix mapping on the real recipes. The Nano Server import script runs here
against real pinned wheels.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO, need_toolset, unavailable
from pipeline.ci_matrix import (
    LINUX_ARM64_RUNNER,
    LINUX_X86_64_RUNNER,
    WINDOWS_ARM64_RUNNER,
    WINDOWS_X64_RUNNER,
    MatrixEntry,
    matrix_entries,
    write_github_output,
)
from pipeline.errors import RewheelError

WORKFLOWS = REPO / ".github" / "workflows"
KNOWN_RUNNERS = {LINUX_X86_64_RUNNER, LINUX_ARM64_RUNNER, WINDOWS_X64_RUNNER, WINDOWS_ARM64_RUNNER}
PINNED_USES = re.compile(r"^(?P<action>[\w.-]+/[\w./-]+)@(?P<sha>[0-9a-f]{40})$")
VERSION_COMMENT = re.compile(r"#\s*v\d+\.\d+\.\d+\s*$")

BROKEN_WORKFLOW = """\
name: broken
on: push
permissions:
  contents: read
jobs:
  build:
    runs-on: ubuntu-24.04
    steps:
      - run: echo "${{ github.event.pull_request.title }}"
      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2
        with:
          persist-credentials: false
    timeout-minute: 5
"""


def workflow_files() -> list[Path]:
    files = sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])
    assert files, f"no workflows under {WORKFLOWS}"
    return files


def load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name}: not a mapping"
    return data


def jobs_of(path: Path) -> dict[str, dict[str, Any]]:
    jobs = load(path)["jobs"]
    assert isinstance(jobs, dict) and jobs, f"{path.name}: no jobs"
    return jobs


def run_scripts(path: Path) -> list[tuple[str, str]]:
    """(job name, script) of every `run:` step."""
    return [
        (name, step["run"])
        for name, job in jobs_of(path).items()
        for step in job.get("steps", [])
        if "run" in step
    ]


# ---- the real linters -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def actionlint() -> str:
    # shellcheck makes actionlint check every bash `run:` script too (quoting, word splitting).
    need_toolset("shellcheck")
    path = shutil.which("actionlint")
    if not path:
        unavailable("actionlint not on PATH: pip install -e '.[test]'")
    assert path
    return path


def check_jsonschema(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", *args]
    # Without a network the check proves the schema is vendored, not fetched (unshare needs root).
    probe = (
        subprocess.run(["unshare", "-n", "true"], capture_output=True) if shutil.which("unshare") else None
    )
    if probe is not None and probe.returncode == 0:
        command = ["unshare", "-n", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_actionlint_passes_every_workflow(actionlint: str) -> None:
    result = subprocess.run(
        [actionlint, "-no-color", *map(str, workflow_files())], capture_output=True, text=True, cwd=REPO
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_match_the_github_schema_offline() -> None:
    result = check_jsonschema(*map(str, workflow_files()))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "validation done" in result.stdout


def test_the_linters_reject_a_broken_workflow(actionlint: str, tmp_path: Path) -> None:
    """Both checkers must be able to fail: an unknown key, and an injectable expression in a script."""
    broken = tmp_path / "broken.yml"
    broken.write_text(BROKEN_WORKFLOW, encoding="utf-8")
    lint = subprocess.run([actionlint, "-no-color", str(broken)], capture_output=True, text=True)
    assert lint.returncode == 1, lint.stdout + lint.stderr
    assert "timeout-minute" in lint.stdout
    assert "github.event.pull_request.title" in lint.stdout  # script injection
    schema = check_jsonschema(str(broken))
    assert schema.returncode == 1, schema.stdout + schema.stderr


# ---- pinning and permissions ------------------------------------------------------------------------------


def test_every_action_is_pinned_by_full_commit_sha() -> None:
    shas: dict[str, set[str]] = {}
    count = 0
    for path in workflow_files():
        for name, job in jobs_of(path).items():
            uses = [step["uses"] for step in job.get("steps", []) if "uses" in step]
            if "uses" in job:  # a reusable workflow
                uses.append(job["uses"])
            for ref in uses:
                if ref.startswith("./"):
                    continue  # a local action is pinned by this commit
                match = PINNED_USES.match(ref)
                assert match, f"{path.name} job {name}: {ref!r} is not pinned by a 40-hex commit SHA"
                shas.setdefault(match["action"], set()).add(match["sha"])
                count += 1
        # The SHA says which commit; the comment says which release, for people and for update bots.
        for line in path.read_text(encoding="utf-8").splitlines():
            if re.match(r"^\s*(-\s+)?uses:\s", line) and "./" not in line:
                assert VERSION_COMMENT.search(line), f"{path.name}: no '# vX.Y.Z' comment on: {line.strip()}"
    assert count >= 10
    mixed = {action: sorted(s) for action, s in shas.items() if len(s) > 1}
    assert not mixed, f"one action pinned to different commits: {mixed}"


def test_permissions_are_least_privilege() -> None:
    for path in workflow_files():
        data = load(path)
        assert data.get("permissions") == {"contents": "read"}, (
            f"{path.name}: top level must be contents: read"
        )
        for name, job in jobs_of(path).items():
            granted = job.get("permissions", {})
            assert granted != "write-all", f"{path.name} job {name}: write-all"
            writes = {scope for scope, level in dict(granted).items() if level == "write"}
            # Elevations are added here on purpose: only the release's runtime-assets job writes (release
            # assets need contents: write), and only on a tag push.
            if (path.name, name) == ("release.yml", "runtime-assets"):
                assert writes == {"contents"} and job["if"] == "github.event_name == 'push'"
                assert "secrets." not in json.dumps(job)
                continue
            assert not writes, f"{path.name} job {name}: write permission {sorted(writes)}"


def test_checkouts_do_not_persist_the_token() -> None:
    for path in workflow_files():
        for name, job in jobs_of(path).items():
            for step in job.get("steps", []):
                if str(step.get("uses", "")).startswith("actions/checkout@"):
                    assert step.get("with", {}).get("persist-credentials") is False, f"{path.name} job {name}"


def test_publish_needs_every_build_and_only_runs_when_they_passed() -> None:
    jobs = jobs_of(WORKFLOWS / "release.yml")
    publish = jobs["publish"]
    assert {"build", "nanoserver-smoke"} <= set(publish["needs"])
    condition = " ".join(str(publish["if"]).split())
    assert "needs.build.result == 'success'" in condition
    assert "!cancelled()" in condition
    assert publish["environment"] == "private-index"
    secrets = {value for value in publish["env"].values() if "secrets." in str(value)}
    assert len(secrets) == 3
    # Secrets belong to the publish job alone.
    for name, job in jobs.items():
        if name != "publish":
            assert "secrets." not in json.dumps(job), f"job {name} reads secrets"


# ---- the workflows' command lines against the real CLI ---------------------------------------------------

_SHELL_STOP = {">", ">>", "|", "||", "&&", ";", "2>&1", "<"}


def _rewheel_invocations(script: str) -> list[list[str]]:
    """The argument lists after each `rewheel` in a bash script (line continuations joined)."""
    joined = re.sub(r"\\\n\s*", " ", script)
    joined = joined.replace("$(", " ").replace(")", " ")  # command substitutions hold commands too
    found = []
    for line in joined.splitlines():
        if "rewheel " not in line or line.strip().startswith("#"):
            continue
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError:
            tokens = line.split()
        for index, token in enumerate(tokens):
            if token == "rewheel":
                args = []
                for arg in tokens[index + 1 :]:
                    if arg in _SHELL_STOP or arg.startswith((">", "|")):
                        break
                    args.append(arg)
                found.append(args)
    return found


def _options(command: Any) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


def test_workflow_rewheel_commands_exist_with_their_options() -> None:
    import click

    from pipeline.cli import cli

    checked = 0
    context = click.Context(cli)
    for path in workflow_files():
        for job, script in run_scripts(path):
            for args in _rewheel_invocations(script):
                where = f"{path.name} job {job}: rewheel {' '.join(args)}"
                command = cli.get_command(context, args[0])
                assert command is not None, f"{where}: no such command"
                rest = args[1:]
                if isinstance(command, click.Group):
                    sub = command.get_command(context, rest[0])
                    assert sub is not None, f"{where}: no subcommand {rest[0]!r}"
                    command, rest = sub, rest[1:]
                known = _options(command)
                for arg in rest:
                    if arg.startswith("--"):
                        assert arg.split("=", 1)[0] in known, f"{where}: unknown option {arg}"
                checked += 1
    assert checked >= 10


def test_matrix_backends_are_build_choices() -> None:
    import click

    from pipeline.ci_matrix import backend_for
    from pipeline.commands.build import command as build

    (backend,) = [p for p in build.params if p.name == "backend"]
    assert isinstance(backend.type, click.Choice)
    assert {backend_for("sdist"), backend_for("wheel")} <= set(backend.type.choices)


def _expressions(node: Any, key: str = "") -> list[str]:
    """Every GitHub expression in a workflow: `${{ ... }}` anywhere, and whole `if:` values."""
    if isinstance(node, dict):
        return [e for k, v in node.items() for e in _expressions(v, str(k))]
    if isinstance(node, list):
        return [e for item in node for e in _expressions(item, key)]
    if not isinstance(node, str):
        return []
    found = re.findall(r"\$\{\{(.*?)\}\}", node, flags=re.S)
    return [node, *found] if key == "if" and not found else found


def test_workflow_matrix_fields_and_plan_outputs_exist(tmp_path: Path) -> None:
    release = (WORKFLOWS / "release.yml").read_text(encoding="utf-8")
    fields = set(MatrixEntry.__dataclass_fields__)
    code = " ".join(_expressions(load(WORKFLOWS / "release.yml")))
    used = set(re.findall(r"(?<![\w.])matrix\.([a-z_]+)", code))
    assert used and used <= fields, f"unknown matrix fields: {sorted(used - fields)}"
    output = tmp_path / "github_output"
    write_github_output(matrix_entries([]), output)
    written = {line.split("=", 1)[0] for line in output.read_text().splitlines()}
    used_outputs = set(re.findall(r"needs\.plan\.outputs\.([a-z_]+)", release))
    declared = set(jobs_of(WORKFLOWS / "release.yml")["plan"]["outputs"])
    assert used_outputs <= declared <= written


# ---- the plan -> matrix mapping on real recipes ------------------------------------------------------------


def _check_entries(entries: list[MatrixEntry]) -> None:
    assert entries
    assert len({e.id for e in entries}) == len(entries), "duplicate job ids"
    # No two entries run the same `rewheel build` command line (it builds every version of a recipe).
    assert len({(e.recipe_path, e.target, e.python) for e in entries}) == len(entries), "duplicate builds"
    assert len({e.artifact for e in entries}) == len(entries), "duplicate artifact names"
    for entry in entries:
        assert entry.runner in KNOWN_RUNNERS, entry
        if entry.target.startswith("win_"):
            assert entry.runner.startswith("windows-"), entry
            assert entry.runner == (WINDOWS_ARM64_RUNNER if entry.arch == "ARM64" else WINDOWS_X64_RUNNER)
        elif entry.arch == "aarch64":
            assert entry.runner == LINUX_ARM64_RUNNER or (
                entry.runner == LINUX_X86_64_RUNNER and entry.qemu
            ), entry
        elif entry.arch == "armv7l":  # no GitHub-hosted 32-bit Arm runner: cibuildwheel under QEMU
            assert entry.runner == LINUX_X86_64_RUNNER and entry.qemu, entry
        else:
            assert entry.runner == LINUX_X86_64_RUNNER and not entry.qemu, entry
        assert (REPO / entry.recipe_path).is_file(), entry.recipe_path
        assert entry.backend == ("wheel-source" if entry.kind == "wheel" else "cibuildwheel")


def _plan_json(*args: str) -> list[dict[str, Any]]:
    from pipeline.builders.backends.cibuildwheel_ids import job_json
    from pipeline.plan import plan
    from pipeline.recipe import load_recipes

    return [job_json(job) for job in plan(load_recipes([Path(a) for a in args] or None))]


def test_matrix_of_the_real_recipes() -> None:
    jobs = _plan_json(str(REPO / "recipes"))
    for arm64 in ("native", "qemu"):
        entries = matrix_entries(jobs, arm64=arm64, root=REPO)  # type: ignore[arg-type]
        covered = [job_id for e in entries for job_id in e.jobs]
        assert sorted(covered) == sorted(j["id"] for j in jobs), "every plan job in exactly one entry"
        assert len(entries) < len(jobs), "pip's versions share one build"
        _check_entries(entries)
        aarch64 = [e for e in entries if e.arch == "aarch64"]
        assert aarch64, "the recipes should exercise aarch64"
        assert all(e.qemu == (arm64 == "qemu") for e in aarch64)


def test_matrix_maps_every_catalogue_target(tmp_path: Path) -> None:
    """A real recipe widened to every target, so Windows x64/arm64 and every Linux target are mapped."""
    from pipeline.targets import catalogue

    recipes = tmp_path / "recipes"
    recipes.mkdir()
    text = (REPO / "recipes" / "markupsafe.toml").read_text(encoding="utf-8")
    every = [name for name in catalogue() if name != "any"]
    widened = re.sub(r"(?ms)^targets = \[.*?\]", "targets = " + json.dumps(every), text, count=1)
    # One Python: every target x every Python would pass GitHub's 256-entry matrix limit (refused with a
    # pointer to the per-family release input: test_matrix_rejects_bad_plans).
    widened = re.sub(r"(?m)^python = \[.*?\]", 'python = ["3.11"]', widened, count=1)
    assert widened != text
    (recipes / "markupsafe.toml").write_text(widened, encoding="utf-8")
    entries = matrix_entries(_plan_json(str(recipes)), root=tmp_path)
    assert {e.target for e in entries} == set(every)
    runners = {e.target: e.runner for e in entries}
    assert runners["win_arm64"] == WINDOWS_ARM64_RUNNER
    assert runners["win_amd64-nanoserver"] == runners["win_amd64-servercore"] == WINDOWS_X64_RUNNER
    assert runners["musllinux_1_2_aarch64"] == LINUX_ARM64_RUNNER
    channels = {e.target: e.channel for e in entries}
    assert channels["win_amd64-nanoserver"] == "nanoserver" and channels["win_amd64"] == ""


def test_matrix_rejects_bad_plans() -> None:
    job = _plan_json(str(REPO / "recipes"))[0]
    with pytest.raises(RewheelError, match="appears twice"):
        matrix_entries([job, job], root=REPO)
    with pytest.raises(RewheelError, match="lacks"):
        matrix_entries([{"id": "x"}], root=REPO)
    with pytest.raises(RewheelError, match="no GitHub runner"):
        matrix_entries([{**job, "os": "freebsd"}], root=REPO)
    too_many = [{**job, "id": f"{job['id']}-{n}", "python": f"3.{n}"} for n in range(257)]
    with pytest.raises(RewheelError, match="256"):
        matrix_entries(too_many, root=REPO)


def test_ci_matrix_cli_from_a_saved_plan(run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    code, plan_out, _ = run_cli("plan", "--json")
    assert code == 0
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(plan_out, encoding="utf-8")
    output = tmp_path / "github_output"
    output.touch()
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    code, out, err = run_cli("ci-matrix", "--from-plan", str(plan_file), "--github-output", "--json")
    assert code == 0, err
    printed = json.loads(out)
    values = dict(line.split("=", 1) for line in output.read_text().splitlines())
    assert json.loads(values["matrix"]) == printed["matrix"]
    covered = [job_id for entry in printed["matrix"]["include"] for job_id in entry["jobs"]]
    assert int(values["count"]) == printed["count"] == len(printed["matrix"]["include"])
    assert sorted(covered) == sorted(job["id"] for job in json.loads(plan_out)["jobs"])
    assert "\n" not in values["matrix"]
    # bad input: one line, exit 2
    code, _, err = run_cli("ci-matrix", "--from-plan", str(tmp_path / "missing.json"))
    assert code == 2 and "cannot read plan" in err
    (tmp_path / "bad.json").write_text("{}", encoding="utf-8")
    code, _, err = run_cli("ci-matrix", "--from-plan", str(tmp_path / "bad.json"))
    assert code == 2 and "no 'jobs' list" in err


# ---- the Nano Server import script, run here on real wheels -----------------------------------------------

MARKUPSAFE_WHEELS = {
    "MarkupSafe-2.1.5-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl": (
        "b91c037585eba9095565a3556f611e3cbfaa42ca1e865f7b8015fe5c7336d5a5"
    ),
    "MarkupSafe-2.1.5-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl": (
        "f5dfb42c4604dddc8e4305050aa6deb084540643ed5804d7455b5df8fe16f5e5"
    ),
}


def test_nanoserver_smoke_script_imports_what_fits(pypi_file, tmp_path: Path) -> None:
    if (
        sys.platform != "linux"
        or os.uname().machine != "x86_64"
        or sys.version_info[:2] not in ((3, 11), (3, 12))
    ):
        pytest.skip("the pinned wheels are CPython 3.11/3.12 manylinux x86_64")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for filename, sha256 in MARKUPSAFE_WHEELS.items():
        shutil.copy(pypi_file("MarkupSafe", "2.1.5", filename, sha256), wheels / filename)
    script = REPO / ".github" / "scripts" / "nanoserver_smoke.py"
    mount = tmp_path / "mount"
    prepared = subprocess.run(
        [sys.executable, str(script), "prepare", "--wheels", str(wheels), "--out", str(mount)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert prepared.returncode == 0, prepared.stdout + prepared.stderr
    listed = json.loads((mount / "imports.json").read_text())
    tag = f"cp3{sys.version_info[1]}"
    assert listed["wheels"] == [
        f"MarkupSafe-2.1.5-{tag}-{tag}-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    ]
    assert "markupsafe._speedups" in listed["imports"]["markupsafe"]
    # `check` runs as it will in the container: isolated mode, from the copied script.
    checked = subprocess.run(
        [sys.executable, "-I", str(mount / "nanoserver_smoke.py"), "check", "--mount", str(mount)],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "ok   markupsafe._speedups" in checked.stdout
    # A module that cannot load fails the check with the interpreter's own error.
    extension = (
        mount / "site" / "markupsafe" / f"_speedups.cpython-3{sys.version_info[1]}-x86_64-linux-gnu.so"
    )
    assert extension.is_file()
    extension.write_bytes(b"not an ELF file")
    failed = subprocess.run(
        [sys.executable, "-I", str(mount / "nanoserver_smoke.py"), "check", "--mount", str(mount)],
        capture_output=True,
        text=True,
    )
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "FAIL markupsafe._speedups: ImportError" in failed.stdout


# ---- the release workflow's own scripts, run here in order for a real job ---------------------------------


def _job_scripts(job: str) -> str:
    """The job's `run:` scripts in order, minus the pip installs (this environment has the package)."""
    steps = jobs_of(WORKFLOWS / "release.yml")[job]["steps"]
    scripts = [step["run"] for step in steps if "run" in step and "pip install" not in step["run"]]
    assert scripts, f"job {job} has no scripts"
    return "\n".join(scripts)


def _bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # GitHub runs `bash --noprofile --norc -eo pipefail {0}` for `shell: bash`.
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize(
    "target, python, required",
    [
        ("musllinux_1_2_aarch64", "3.13", True),  # musl-cpython-3.13-aarch64 hosts it
        ("musllinux_1_2_aarch64", "3.11", True),
        ("musllinux_1_2_x86_64", "3.13", True),
        ("manylinux_2_17_aarch64", "3.13", True),
        ("musllinux_1_2_aarch64", "3.12", False),  # no CPython 3.12 source: verify is the proof
        ("win_amd64", "3.11", False),
    ],
)
def test_release_build_requires_import_where_a_runtime_hosts_the_job(
    tmp_path: Path, target: str, python: str, required: bool
) -> None:
    """The build step's own bash decides --require-import; `rewheel` is a shell function here that records
    the command line it was given, so only the step's choice is under test."""
    (step,) = [
        s for s in jobs_of(WORKFLOWS / "release.yml")["build"]["steps"] if "rewheel build" in s.get("run", "")
    ]
    record = 'rewheel() { printf "%s\\n" "$@"; }\n'
    env = {"RECIPE_PATH": "recipes/markupsafe.toml", "TARGET": target, "PYTHON": python, "BACKEND": "zig"}
    result = _bash(record + step["run"], tmp_path, env)
    assert result.returncode == 0, result.stderr
    args = (tmp_path / "build-summary.json").read_text().splitlines()
    assert args[:5] == ["build", "recipes/markupsafe.toml", "--target", target, "--python"]
    assert ("--require-import" in args) is required


@pytest.mark.slow
def test_release_scripts_plan_build_verify_publish(tmp_path: Path, shared_cache: Path) -> None:
    """plan -> matrix -> build -> verify -> record -> publish, with the workflow's own bash, for the pip recipe
    (a wheel-source job: no container needed), publishing to a static index folder instead of a URL."""
    workspace = tmp_path / "checkout"
    workspace.mkdir()
    for folder in ("recipes", "patches"):
        shutil.copytree(REPO / folder, workspace / folder)
    outputs, summary = tmp_path / "github_output", tmp_path / "step_summary"
    outputs.touch()
    github = {"GITHUB_OUTPUT": str(outputs), "GITHUB_STEP_SUMMARY": str(summary)}

    plan = _bash(
        _job_scripts("plan"), workspace, {**github, "RECIPES": "recipes", "TARGETS": "any", "ARM64": "native"}
    )
    assert plan.returncode == 0, plan.stdout + plan.stderr
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert values["count"] == "1" and json.loads(values["targets"]) == ["any"]
    (entry,) = json.loads(values["matrix"])["include"]
    assert entry["id"] == "pip-any-any" and "```" in summary.read_text()

    # actions/cache restores the wheelhouse: a warm run finds up-to-date build records and skips the build.
    cached_wheelhouse = shared_cache / "test-workflows" / "wheelhouse"
    if cached_wheelhouse.is_dir():
        shutil.copytree(cached_wheelhouse, workspace / "wheelhouse")
    build_env = {
        "RECIPE_PATH": entry["recipe_path"],
        "TARGET": entry["target"],
        "PYTHON": entry["python"],
        "BACKEND": entry["backend"],
        "MATRIX_JSON": json.dumps(entry),
        "GITHUB_ENV": str(tmp_path / "github_env"),
        "GITHUB_WORKSPACE": str(workspace),
    }
    build = _bash(_job_scripts("build"), workspace, build_env)
    # the runtimes job's archives are the build's runtime source (the runner applies GITHUB_ENV to later steps)
    assert f"REWHEEL_RUNTIME_SOURCE={workspace}/runtime-archives" in (tmp_path / "github_env").read_text()
    assert build.returncode == 0, build.stdout + build.stderr[-3000:]
    shutil.copytree(workspace / "wheelhouse", cached_wheelhouse, dirs_exist_ok=True)
    verdicts = json.loads((workspace / "wheelhouse" / "verify.json").read_text())["results"]
    assert len(verdicts) == len(entry["versions"]) and all(v["ok"] for v in verdicts)

    # upload-artifact (wheelhouse/*.whl, wheelhouse/*.json) then download-artifact into dist/<artifact>/.
    artifact = workspace / "dist" / entry["artifact"]
    artifact.mkdir(parents=True)
    for pattern in ("*.whl", "*.json"):
        for file in (workspace / "wheelhouse").glob(pattern):
            shutil.copy2(file, artifact / file.name)
    assert json.loads((artifact / "job.json").read_text()) == entry

    unset = _bash(_job_scripts("publish"), workspace, {"REWHEEL_INDEX_URL": ""})
    assert unset.returncode == 1 and "REWHEEL_INDEX_URL is not set" in unset.stdout
    index = tmp_path / "index"
    publish = _bash(_job_scripts("publish"), workspace, {"REWHEEL_INDEX_URL": str(index)})
    assert publish.returncode == 0, publish.stdout + publish.stderr
    (published,) = [json.loads(line) for line in (workspace / "published.jsonl").read_text().splitlines()]
    assert sorted(f["status"] for f in published["files"]) == ["added"] * len(entry["versions"])
    assert len(list(index.rglob("pip-*.whl"))) == len(entry["versions"])
