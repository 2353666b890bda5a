"""Prepare one job's input: fetch the pinned source, unpack it safely, apply the recipe's source patches.

Everything happens inside the job's own work dir, so a job that fails here leaves nothing behind in the
wheelhouse and cannot disturb another job. Wheel sources (kind = "wheel") are only fetched: their patches are
applied to the unpacked wheel by the wheel-source backend, at stage "wheel".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import RewheelError
from pipeline.log import log

if TYPE_CHECKING:
    from pipeline.fetch import Pin
    from pipeline.plan import Job


@dataclass
class PreparedSource:
    source_file: Path  # the verified file in the download cache (never modified)
    source_sha256: str
    tree: Path | None  # the unpacked, patched sdist root; None for wheel sources
    patches_applied: list[Path] = field(default_factory=list)


def source_pin(job: Job) -> Pin:
    """The Pin for the job's [[source]] entry (the index project defaults to the recipe name)."""
    from pipeline.fetch import pin_for_source

    return pin_for_source(job.recipe.source_for(job.version), job.recipe.name)


def prepare(job: Job, work_dir: Path) -> PreparedSource:
    """Fetch, unpack and patch the job's source under `work_dir`; RewheelError on any failure."""
    from pipeline.fetch import fetch

    pin = source_pin(job)
    source_file = fetch(pin)
    if job.kind == "wheel":
        return PreparedSource(source_file=source_file, source_sha256=pin.sha256, tree=None)

    from pipeline.unpack import unpack

    unpacked = unpack(source_file, work_dir / "source")
    tree = sdist_root(unpacked, source_file.name)
    applied = apply_source_patches(job, tree)
    if applied:
        names = ", ".join(p.name for p in applied)
        log.say(f"prepare: {job.id}: applied {len(applied)} source patch(es): {names}")
    return PreparedSource(
        source_file=source_file, source_sha256=pin.sha256, tree=tree, patches_applied=applied
    )


def sdist_root(unpacked: Path, archive_name: str) -> Path:
    """An sdist holds one top-level folder (name-version/); that folder is the project root."""
    entries = [e for e in unpacked.iterdir() if not e.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    if (unpacked / "pyproject.toml").is_file() or (unpacked / "setup.py").is_file():
        return unpacked  # a flat archive is unusual but buildable
    raise RewheelError(
        f"{archive_name}: not an sdist (expected one top-level folder with pyproject.toml or setup.py)"
    )


def apply_source_patches(job: Job, tree: Path) -> list[Path]:
    """Apply the recipe's stage="source" patches for this job (sha256 checked first, strictly, in order)."""
    if not job.recipe.patches_for(job.version, job.target, "source"):
        return []
    from pipeline.patching import apply_recipe_patches

    return list(apply_recipe_patches(job.recipe, job.version, job.target, "source", tree))
