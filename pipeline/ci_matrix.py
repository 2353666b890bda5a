"""Turn a build plan (`rewheel plan --json`) into a GitHub Actions job matrix: one entry per recipe x target
x Python (one `rewheel build` invocation, which builds every version of the recipe), each with the runner
that can build and load its target.

The release workflow runs `rewheel plan --json`, then `rewheel ci-matrix --from-plan plan.json
--github-output`, and fans the entries out with `strategy.matrix: ${{ fromJSON(...) }}`. Keeping the
mapping here (not in workflow YAML expressions) makes it testable on the real recipes.

Runners (GitHub-hosted labels):
- Linux x86_64 (manylinux/musllinux) and pure-Python jobs: ubuntu-24.04 (Docker for cibuildwheel's images).
- Linux aarch64: ubuntu-24.04-arm, native arm64 and about ten times faster than emulation; or, with
  `arm64="qemu"`, ubuntu-24.04 with QEMU registered (for repositories where arm runners are unavailable).
- Windows x64, all editions (desktop, Server Core, Nano Server channels share one build): windows-2022,
  the Server 2022 host that can also run Nano Server ltsc2022 containers with process isolation.
- Windows arm64: windows-11-arm.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from pipeline.errors import RewheelError

# GitHub refuses a matrix with more than 256 entries per workflow run; failing here says so before a push.
GITHUB_MATRIX_LIMIT = 256

LINUX_X86_64_RUNNER = "ubuntu-24.04"
LINUX_ARM64_RUNNER = "ubuntu-24.04-arm"
WINDOWS_X64_RUNNER = "windows-2022"
WINDOWS_ARM64_RUNNER = "windows-11-arm"

ArmMode = Literal["native", "qemu"]
ARM_MODES: tuple[str, ...] = ("native", "qemu")

# Characters upload-artifact rejects in artifact names (and '/' which would nest folders on download).
_ARTIFACT_UNSAFE = re.compile(r'[":<>|*?\\/\r\n]')
_REQUIRED_KEYS = ("id", "recipe", "version", "target", "python", "kind", "os", "arch")


@dataclass(frozen=True)
class MatrixEntry:
    """One CI build job as the workflow sees it: scalars (plus the list of plan jobs it covers)."""

    id: str  # "<recipe>-<target>-<python>"
    recipe: str
    recipe_path: str  # relative to the repository root, '/'-separated, so it works on every runner
    versions: tuple[str, ...]  # the recipe's source versions this job builds
    jobs: tuple[str, ...]  # the plan job ids it covers
    kind: str
    target: str
    python: str
    os: str
    arch: str
    runner: str
    qemu: bool  # register QEMU binfmt handlers before building (aarch64 on an x86_64 runner)
    backend: str  # the `rewheel build --backend` value
    artifact: str  # upload-artifact name, unique per run
    channel: str  # the index channel the target publishes to ("" = the main index)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["versions"] = list(self.versions)
        data["jobs"] = list(self.jobs)
        return data


@dataclass(frozen=True)
class Runner:
    label: str
    qemu: bool


def runner_for(os_name: str, arch: str, *, arm64: ArmMode = "native") -> Runner:
    """The GitHub-hosted runner for a target's OS and architecture (as the target catalogue spells them)."""
    if arm64 not in ARM_MODES:
        raise RewheelError(f"unknown arm64 mode {arm64!r}; use one of: {', '.join(ARM_MODES)}")
    key = (os_name, arch.lower())
    if key in (("linux", "x86_64"), ("any", "any")):
        return Runner(LINUX_X86_64_RUNNER, qemu=False)
    if key == ("linux", "aarch64"):
        if arm64 == "qemu":
            return Runner(LINUX_X86_64_RUNNER, qemu=True)
        return Runner(LINUX_ARM64_RUNNER, qemu=False)
    if key == ("windows", "amd64"):
        return Runner(WINDOWS_X64_RUNNER, qemu=False)
    if key == ("windows", "arm64"):
        return Runner(WINDOWS_ARM64_RUNNER, qemu=False)
    if key == ("windows", "x86"):  # win32 builds on the x64 runner (WoW64 runs x86 Python)
        return Runner(WINDOWS_X64_RUNNER, qemu=False)
    if key == ("linux", "i686"):  # the x86_64 kernel runs i686 containers natively
        return Runner(LINUX_X86_64_RUNNER, qemu=False)
    if os_name == "linux" and key[1] in ("ppc64le", "s390x", "armv7l"):  # policy targets: emulated
        return Runner(LINUX_X86_64_RUNNER, qemu=True)
    raise RewheelError(f"no GitHub runner known for os {os_name!r} and arch {arch!r}")


def backend_for(kind: str) -> str:
    """cibuildwheel builds sdists on CI (Docker and native hosts are there); wheel sources are re-packed."""
    return "wheel-source" if kind == "wheel" else "cibuildwheel"


def artifact_name(job_id: str) -> str:
    return "wheels-" + _ARTIFACT_UNSAFE.sub("_", job_id)


def _relative_recipe_path(raw: object, recipe: str, root: Path) -> str:
    """A plan made on one runner names absolute paths; the build runner needs repo-relative ones."""
    if not raw:
        return f"recipes/{recipe}.toml"
    path = Path(str(raw))
    if path.is_absolute():
        try:
            path = path.resolve().relative_to(root.resolve())
        except ValueError:
            raise RewheelError(f"recipe {path} is outside the repository {root}") from None
    return path.as_posix()


def matrix_entries(
    jobs: Iterable[Mapping[str, Any]], *, arm64: ArmMode = "native", root: Path | None = None
) -> list[MatrixEntry]:
    """Map plan jobs (the `jobs` items of `rewheel plan --json`) to matrix entries, checking every one.

    Plan jobs differing only in source version share an entry: `rewheel build RECIPE --target T --python V`
    builds every version of the recipe, so one entry per version would build each version several times.
    """
    from pipeline.paths import project_root
    from pipeline.targets import get_target

    root = root or project_root()
    grouped: dict[tuple[str, str, str], MatrixEntry] = {}
    seen: dict[str, int] = {}
    artifacts: dict[str, tuple[str, str, str]] = {}
    for index, job in enumerate(jobs):
        missing = [key for key in _REQUIRED_KEYS if key not in job]
        if missing:
            raise RewheelError(
                f"plan job #{index} lacks {', '.join(missing)}: is this `rewheel plan --json` output?"
            )
        job_id = str(job["id"])
        if job_id in seen:
            raise RewheelError(f"plan job {job_id!r} appears twice (#{seen[job_id]} and #{index})")
        seen[job_id] = index
        recipe, python = str(job["recipe"]), str(job["python"])
        target = get_target(str(job["target"]))
        key = (recipe, target.name, python)
        if key in grouped:
            entry = grouped[key]
            grouped[key] = replace(
                entry, versions=(*entry.versions, str(job["version"])), jobs=(*entry.jobs, job_id)
            )
            continue
        runner = runner_for(str(job["os"]), str(job["arch"]), arm64=arm64)
        entry_id = f"{recipe}-{target.name}-{python}"
        artifact = artifact_name(entry_id)
        if artifact in artifacts:
            raise RewheelError(f"two jobs map to the artifact name {artifact!r}; rename one recipe")
        artifacts[artifact] = key
        grouped[key] = MatrixEntry(
            id=entry_id,
            recipe=recipe,
            recipe_path=_relative_recipe_path(job.get("recipe_path"), recipe, root),
            versions=(str(job["version"]),),
            jobs=(job_id,),
            kind=str(job["kind"]),
            target=target.name,
            python=python,
            os=str(job["os"]),
            arch=str(job["arch"]),
            runner=runner.label,
            qemu=runner.qemu,
            backend=backend_for(str(job["kind"])),
            artifact=artifact,
            channel=target.channel or "",
        )
    entries = list(grouped.values())
    if len(entries) > GITHUB_MATRIX_LIMIT:
        raise RewheelError(
            f"{len(entries)} jobs exceed GitHub's {GITHUB_MATRIX_LIMIT} matrix entries per run; "
            "run the release per target family (workflow input 'targets')"
        )
    return entries


def load_plan(path: Path | None) -> list[dict[str, Any]]:
    """The `jobs` list of a saved `rewheel plan --json` (path '-' or None reads stdin)."""
    import sys

    try:
        text = sys.stdin.read() if path is None or str(path) == "-" else path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RewheelError(f"cannot read plan {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RewheelError(f"plan {path or 'stdin'} is not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
        raise RewheelError(f"plan {path or 'stdin'} has no 'jobs' list: is it `rewheel plan --json` output?")
    return data["jobs"]


def github_matrix(entries: list[MatrixEntry]) -> dict[str, Any]:
    """The value for `strategy.matrix` (include-only, so each entry is exactly one job)."""
    return {"include": [entry.to_json() for entry in entries]}


def write_github_output(entries: list[MatrixEntry], output_file: Path | None = None) -> Path:
    """Append `matrix=<json>`, `count=<n>` and `targets=<json list>` to $GITHUB_OUTPUT (a step's outputs file).

    `targets` lets later jobs run only when the plan has a target (e.g. the Nano Server import job).
    """
    target = output_file or (Path(os.environ["GITHUB_OUTPUT"]) if os.environ.get("GITHUB_OUTPUT") else None)
    if target is None:
        raise RewheelError(
            "--github-output needs the GITHUB_OUTPUT variable (set by GitHub Actions) or a file"
        )
    # One line each: the name=value form cannot hold a newline, and compact JSON has none.
    compact = json.dumps(github_matrix(entries), separators=(",", ":"))
    targets = json.dumps(sorted({entry.target for entry in entries}), separators=(",", ":"))
    with target.open("a", encoding="utf-8") as handle:
        handle.write(f"matrix={compact}\n")
        handle.write(f"count={len(entries)}\n")
        handle.write(f"targets={targets}\n")
    return target
