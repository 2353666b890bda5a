"""The closing lines of `rewheel build`: how many wheels were built, verified, imported on their target, and why
the others could not be imported here (one line per reason, with its count); the same numbers in --json.

The outcomes are the orchestrator's own data objects for the repository's real markupsafe jobs; the smoke
entries are pipeline.smoke's SmokeResult (status passed / cannot-host with its message), or an up-to-date job's
smoke entry as read from its build record. The end-to-end check of these lines on a real run is in
test_cibuildwheel_backend.py (real cibuildwheel, real imports).
"""

from __future__ import annotations

from pathlib import Path

from conftest import REPO
from helpers.job_json import JOB_SHAPE, NOT_RUN_SHAPE, SMOKE_RESULT_SHAPE, assert_shape
from pipeline.builders.orchestrator import JobOutcome, RunSummary
from pipeline.builders.results import RecordedSmoke, SmokeNotRun, SmokeOutcome
from pipeline.plan import plan
from pipeline.recipe import load_recipe
from pipeline.smoke import SmokeResult

NO_AARCH64 = "no runtime on this machine hosts musllinux_1_2_aarch64"
NO_312 = "the wheel needs Python 3.12 and no musllinux_1_2_x86_64 runtime here has it"


def _outcomes() -> list[JobOutcome]:
    jobs = {
        (j.target, j.python): j
        for j in plan([load_recipe(REPO / "recipes" / "markupsafe.toml")], ["musllinux_1_2_*"])
    }

    def outcome(target: str, python: str, status: str, smoke: SmokeOutcome) -> JobOutcome:
        job = jobs[(target, python)]
        wheel = Path(f"/wh/markupsafe-2.1.5-cp{python.replace('.', '')}-{target}.whl")
        return JobOutcome(job, status, "zig", "why", wheels=[wheel], smoke=[smoke])

    def smoked(target: str, python: str, status: str, message: str = "") -> SmokeResult:
        wheel = f"markupsafe-2.1.5-cp{python.replace('.', '')}-{target}.whl"
        return SmokeResult(
            wheel, target, status, runtime="musl" if status == "passed" else None, message=message
        )

    return [
        outcome("musllinux_1_2_x86_64", "3.11", "built", smoked("musllinux_1_2_x86_64", "3.11", "passed")),
        # an up-to-date job's smoke comes from its build record on disk, as JSON
        outcome("musllinux_1_2_x86_64", "3.12", "up-to-date", RecordedSmoke({"status": "cannot-host", "message": NO_312})),
        outcome("musllinux_1_2_aarch64", "3.11", "built", smoked("musllinux_1_2_aarch64", "3.11", "cannot-host", NO_AARCH64)),
        outcome("musllinux_1_2_aarch64", "3.12", "built", smoked("musllinux_1_2_aarch64", "3.12", "cannot-host", NO_AARCH64)),
        JobOutcome(jobs[("musllinux_1_2_x86_64", "3.11")], "failed", "zig", stage="build", message="boom"),
    ]  # fmt: skip


def test_summary_lines_count_wheels_and_group_the_reasons_they_were_not_imported() -> None:
    summary = RunSummary(_outcomes(), Path("/wh"), 1.0)
    lines = summary.summary_lines()
    assert lines[0] == (
        "wheels: 3 built, 1 up to date, 4 verified, 1 imported on their target, 3 not imported here"
    )
    # N/N per target and Python: the line that says whether every cp311 (or cp313) wheel was imported
    assert lines[1] == (
        "imported: musllinux_1_2_aarch64 cp311 0/1, musllinux_1_2_aarch64 cp312 0/1, "
        "musllinux_1_2_x86_64 cp311 1/1, musllinux_1_2_x86_64 cp312 0/1"
    )
    assert sorted(lines[2:]) == sorted(
        [f"not imported here: 2 wheel(s): {NO_AARCH64}", f"not imported here: 1 wheel(s): {NO_312}"]
    )


def test_json_summary_carries_the_same_counts_and_keeps_its_keys() -> None:
    data = RunSummary(_outcomes(), Path("/wh"), 1.0).to_json()
    assert {"ok", "wheelhouse", "seconds", "jobs", "failed"} <= set(data)  # extended, never renamed
    assert data["counts"] == {"built": 3, "up_to_date": 1, "verified": 4, "imported": 1, "not_imported": 3,
                              "quarantined": 0}  # fmt: skip
    by_reason = {entry["reason"]: entry for entry in data["not_imported"]}
    assert by_reason[NO_AARCH64]["count"] == 2 and len(by_reason[NO_AARCH64]["wheels"]) == 2
    assert by_reason[NO_312]["wheels"] == ["markupsafe-2.1.5-cp312-musllinux_1_2_x86_64.whl"]
    assert {"target": "musllinux_1_2_x86_64", "python": "3.11", "imported": 1, "wheels": 1} in data[
        "imported_by_target"
    ]


def test_job_result_json_keeps_its_keys_and_types() -> None:
    outcomes = _outcomes()
    quarantined = JobOutcome(outcomes[0].job, "quarantined", "zig", "why", wheels=[Path("/wh/q/a.whl")],
                             seconds=0.25, stage="verify", message="failed verify",
                             smoke=[SmokeNotRun("skipped", "verify failed")])  # fmt: skip
    for outcome in [*outcomes, quarantined]:
        data = outcome.to_json()
        assert_shape(data, JOB_SHAPE)
        assert data["ok"] is (outcome.status in ("built", "up-to-date"))
        assert all(isinstance(w, str) for w in data["wheels"])  # type: ignore[attr-defined]
    smoke = outcomes[0].to_json()["smoke"][0]  # type: ignore[index]
    assert_shape(smoke, SMOKE_RESULT_SHAPE)
    assert smoke["status"] == "passed" and smoke["ok"] is True
    # verify failed / --no-smoke / no runtime here: the three keys the orchestrator always wrote
    assert quarantined.to_json()["smoke"] == [
        {"status": "skipped", "runtime": None, "message": "verify failed"}
    ]
    assert_shape(SmokeNotRun("error", "no runtime").to_json(), NOT_RUN_SHAPE)
    # an up-to-date job shows its recorded smoke exactly as the record has it
    assert outcomes[1].to_json()["smoke"] == [{"status": "cannot-host", "message": NO_312}]
    # a failed job never reached smoke
    assert outcomes[-1].to_json()["smoke"] == [] and outcomes[-1].to_json()["stage"] == "build"
