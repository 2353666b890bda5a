"""Build records (`<wheel>.build.json` next to each wheel) and the job keys that make builds incremental.

A job's key is the sha256 of everything that can change its wheel: the parts of the recipe the job uses
(its source pin, the patches that apply to it with their sha256, build options for its target, disabled
features, native libraries, repair options, test spec), the backend's name and fingerprint, rewheel's own
version and the repair tools' versions. A job is up to date when a record in the wheelhouse carries its id
and key and every wheel the job produced is still there with the sha256 the record names. Computing the key
reads only the recipe and installed metadata: no download, no subprocess, so a no-op run stays fast.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.util import atomic_path, sha256_file, shareable_mode

if TYPE_CHECKING:
    from pipeline.builders.repair import RepairResult
    from pipeline.builders.results import SmokeOutcome
    from pipeline.plan import Job
    from pipeline.verify.report import WheelReport

RECORD_SUFFIX = ".build.json"
RECORD_FORMAT = 1


def job_key_inputs(job: Job, backend_name: str, backend_fingerprint: dict[str, str]) -> dict[str, Any]:
    """What the key hashes, kept readable: it is also written into the record for `why did this rebuild`."""
    from pipeline import __version__
    from pipeline.builders.repair import repair_tool_versions

    recipe = job.recipe
    source = recipe.source_for(job.version)
    options = recipe.build.for_target(job.target)
    patches = [
        p.model_dump(include={"file", "sha256", "strip", "stage"})
        for p in recipe.patch
        if p.applies_to(job.version, job.target)
    ]
    return {
        "job": {
            "recipe": recipe.normalized_name,
            "version": job.version,
            "target": job.target,
            "python": job.python,
        },
        "source": source.model_dump(include={"filename", "sha256", "kind"}),
        "patches": patches,
        "build": options.model_dump(mode="json"),
        "features": {
            name: recipe.features[name].model_dump(mode="json") for name in options.disable_features
        },
        "native": [n.model_dump(mode="json") for n in recipe.native],
        "repair": recipe.repair.model_dump(mode="json"),
        "test": recipe.test.model_dump(mode="json"),
        "backend": {"name": backend_name, "fingerprint": dict(sorted(backend_fingerprint.items()))},
        "rewheel": __version__,
        "tools": repair_tool_versions(),
    }


def job_key(inputs: dict[str, Any]) -> str:
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def record_path(wheel: Path) -> Path:
    return wheel.with_name(wheel.name + RECORD_SUFFIX)


def write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    """Readers see the old record or the new one, never half; readable by a web server like the wheels."""
    with atomic_path(path, mode=shareable_mode()) as temporary:
        temporary.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


@dataclass
class BuildRecord:
    """One wheel's build record while its job runs, typed; JSON only when it is written beside the wheel."""

    wheel: dict[str, Any]  # wheel_facts of the wheel as built (its bytes do not change when it is installed)
    job: Job
    key: str
    key_inputs: dict[str, Any]  # what the key hashes, already JSON
    inputs: dict[str, Any]  # the recipe, source, patch and native pins this build used, already JSON
    backend: str
    reason: str  # why this backend
    tool_versions: dict[str, str]
    commands: list[list[str]]
    repair: RepairResult
    verify: WheelReport
    smoke: SmokeOutcome
    timings: dict[str, float]
    features_disabled: list[dict[str, str]]
    notes: list[str]
    built_at: str
    host: dict[str, str]
    job_wheels: list[str] = field(default_factory=list)  # set once every wheel of the job has its final name

    def to_json(self) -> dict[str, Any]:
        from pipeline.builders.backends.cibuildwheel_ids import job_json, target_json
        from pipeline.targets import get_target

        return {
            "format": RECORD_FORMAT,
            "wheel": self.wheel,
            "job": job_json(self.job),
            "target": target_json(get_target(self.job.target)),
            "key": self.key,
            "key_inputs": self.key_inputs,
            "inputs": self.inputs,
            "backend": {
                "name": self.backend,
                "reason": self.reason,
                "fingerprint": self.key_inputs["backend"]["fingerprint"],
            },
            "tool_versions": self.tool_versions,
            "commands": self.commands,
            "repair": self.repair.to_json(),
            "verify": self.verify.to_json(),
            "smoke": self.smoke.to_json(),
            "timings": {stage: round(seconds, 3) for stage, seconds in self.timings.items()},
            "features_disabled": self.features_disabled,
            "notes": self.notes,
            "job_wheels": self.job_wheels,
            "built_at": self.built_at,
            "host": self.host,
        }


@dataclass
class StoredRecord:
    path: Path
    data: dict[str, Any]

    @property
    def job_id(self) -> str:
        return str(self.data.get("job", {}).get("id", ""))

    @property
    def key(self) -> str:
        return str(self.data.get("key", ""))

    @property
    def backend(self) -> str:
        return str(self.data.get("backend", {}).get("name", ""))

    @property
    def wheel(self) -> Path:
        return self.path.with_name(self.path.name[: -len(RECORD_SUFFIX)])


class RecordIndex:
    """The build records found in a wheelhouse (top level and channel folders, not quarantine), by job id."""

    def __init__(self, wheelhouse: Path) -> None:
        self.wheelhouse = wheelhouse
        self.by_job: dict[str, list[StoredRecord]] = {}
        if not wheelhouse.is_dir():
            return
        for path in [*wheelhouse.glob("*" + RECORD_SUFFIX), *wheelhouse.glob("*/*" + RECORD_SUFFIX)]:
            if path.parent.name == "quarantine":
                continue
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # an unreadable record just means "not up to date"
            record = StoredRecord(path, data)
            self.by_job.setdefault(record.job_id, []).append(record)

    def recorded_backends(self, job_id: str) -> list[str]:
        return sorted({r.backend for r in self.by_job.get(job_id, [])})

    def up_to_date(self, job_id: str, key: str, *, need_smoke: bool) -> list[Path] | None:
        """The job's wheels when a record with this key exists and all of its wheels are intact; else None."""
        for record in self.by_job.get(job_id, []):
            if record.key != key:
                continue
            if need_smoke and record.data.get("smoke", {}).get("status") == "skipped":
                continue  # built with --no-smoke; now a smoke result is wanted, so run the job again
            wheels = [
                record.path.parent / name for name in record.data.get("job_wheels", [record.wheel.name])
            ]
            if all(self._intact(wheel) for wheel in wheels):
                return wheels
        return None

    def _intact(self, wheel: Path) -> bool:
        record_file = record_path(wheel)
        if not wheel.is_file() or not record_file.is_file():
            return False
        try:
            recorded = json.loads(record_file.read_text(encoding="utf-8"))["wheel"]
        except (OSError, ValueError, KeyError, TypeError):
            return False
        # The size check is free and catches most damage; the hash proves the rest.
        if wheel.stat().st_size != recorded.get("size"):
            return False
        return bool(sha256_file(wheel) == recorded.get("sha256"))


def wheel_facts(wheel: Path) -> dict[str, Any]:
    return {"filename": wheel.name, "sha256": sha256_file(wheel), "size": wheel.stat().st_size}
