"""The closing lines of `rewheel build`: how many wheels were built, verified, imported on their target, and why
the others could not be imported here (one line per reason, with its count); the same numbers in --json.

The outcomes are the orchestrator's own data objects for the repository's real markupsafe jobs; the smoke
entries have the shape pipeline.smoke writes (status passed / cannot-host with its message). The end-to-end
check of these lines on a real run is in test_cibuildwheel_backend.py (real cibuildwheel, real imports).
"""

from __future__ import annotations

from pathlib import Path

from conftest import REPO
from pipeline.build.orchestrator import JobOutcome, RunSummary
from pipeline.plan import plan
from pipeline.recipe import load_recipe

NO_AARCH64 = "no runtime on this machine hosts musllinux_1_2_aarch64"
NO_312 = "the wheel needs Python 3.12 and no musllinux_1_2_x86_64 runtime here has it"


def _outcomes() -> list[JobOutcome]:
    jobs = {
        (j.target, j.python): j
        for j in plan([load_recipe(REPO / "recipes" / "markupsafe.toml")], ["musllinux_1_2_*"])
    }

    def outcome(target: str, python: str, status: str, smoke: dict[str, object]) -> JobOutcome:
        job = jobs[(target, python)]
        wheel = Path(f"/wh/markupsafe-2.1.5-cp{python.replace('.', '')}-{target}.whl")
        return JobOutcome(job, status, "zig", "why", wheels=[wheel], smoke=[smoke])

    return [
        outcome("musllinux_1_2_x86_64", "3.11", "built", {"status": "passed", "runtime": "musl"}),
        outcome("musllinux_1_2_x86_64", "3.12", "up-to-date", {"status": "cannot-host", "message": NO_312}),
        outcome("musllinux_1_2_aarch64", "3.11", "built", {"status": "cannot-host", "message": NO_AARCH64}),
        outcome("musllinux_1_2_aarch64", "3.12", "built", {"status": "cannot-host", "message": NO_AARCH64}),
        JobOutcome(jobs[("musllinux_1_2_x86_64", "3.11")], "failed", "zig", stage="build", message="boom"),
    ]


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
