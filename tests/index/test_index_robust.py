"""The static index under stress: a publisher SIGKILLed midway leaves a consistent index that a re-run
completes, and two publishers running at once both land."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from helpers.index import verify_record
from helpers.synthetic import make_wheels
from pipeline.index.static import check_index

PUBLISH_TIMEOUT = 300


def _listed_files(root: Path) -> set[str]:
    names: set[str] = set()
    for page in (root / "simple").glob("*/index.json"):
        names |= {f["filename"] for f in json.loads(page.read_text())["files"]}
    return names


def _publish_command(wheels_dir: Path, root: Path, record: Path) -> list[str]:
    return [sys.executable, "-m", "pipeline", "publish", str(wheels_dir), "--to", str(root),
            "--verified-by", str(record), "--json"]  # fmt: skip


def test_sigkill_midway_leaves_a_consistent_index_and_a_rerun_completes(tmp_path: Path) -> None:
    root = tmp_path / "index"
    seed = make_wheels(tmp_path / "seed", projects=3, versions=1, prefix="seed")
    record = verify_record(tmp_path / "seed.json", seed)
    subprocess.run(_publish_command(tmp_path / "seed", root, record), check=True, capture_output=True)

    batch_dir = tmp_path / "batch"
    batch = make_wheels(batch_dir, projects=40, versions=10)  # 400 wheels
    record = verify_record(tmp_path / "batch.json", batch)
    kills = 0
    healed = False
    # Kill the publisher midway by its own progress (after it has added N files; later runs redo less), not by
    # a clock: a fast machine can finish 400 wheels before any fixed delay. Check the index after every kill,
    # until a run gets to finish by itself.
    for added_before_kill in (1, 30, 90, 180, 300):
        process = subprocess.Popen(
            _publish_command(batch_dir, root, record),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stderr is not None
        added = 0
        for line in process.stderr:  # the publisher's progress: "index: added files/<project>/<file>"
            added += line.startswith("index: added ")
            if added >= added_before_kill:
                process.send_signal(signal.SIGKILL)
                break
        process.wait(timeout=PUBLISH_TIMEOUT)
        if process.returncode == 0:
            break
        assert process.returncode == -signal.SIGKILL, process.stderr.read()
        kills += 1
        assert check_index(root) == []  # every page parses; every link has its bytes and hash
        listed = _listed_files(root)
        assert {w.name for w in seed} <= listed  # what was published before is untouched
        on_disk = {p.name for p in (root / "files").rglob("*.whl") if not p.name.startswith(".")}
        healed |= len(on_disk) > len(listed)  # files landed but were not yet listed: the next run lists them
    assert kills >= 1, "the publisher always finished before it could be killed"
    rerun = subprocess.run(
        _publish_command(batch_dir, root, record), capture_output=True, text=True, timeout=PUBLISH_TIMEOUT
    )
    assert rerun.returncode == 0, rerun.stderr
    assert check_index(root) == []
    assert _listed_files(root) == {w.name for w in seed + batch}
    assert not list(root.rglob(".tmp-*")), "temporary files of a killed publisher were left behind"
    print(f"killed {kills} publisher(s); a kill left files to pick up: {healed}")


def test_two_concurrent_publishers_both_land(tmp_path: Path) -> None:
    root = tmp_path / "index"
    first = make_wheels(tmp_path / "a", projects=10, versions=5, prefix="shared")  # 1.0.0 .. 1.0.4
    second_dir = tmp_path / "b"
    from helpers.synthetic import make_wheel

    second = [make_wheel(second_dir, f"shared-{p}", f"2.0.{v}") for p in range(10) for v in range(5)]
    record_a = verify_record(tmp_path / "a.json", first)
    record_b = verify_record(tmp_path / "b.json", second)
    processes = [
        subprocess.Popen(_publish_command(tmp_path / "a", root, record_a), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True),
        subprocess.Popen(_publish_command(second_dir, root, record_b), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True),
    ]  # fmt: skip
    for process in processes:
        _, err = process.communicate(timeout=PUBLISH_TIMEOUT)
        assert process.returncode == 0, err
    assert check_index(root) == []
    assert _listed_files(root) == {w.name for w in first + second}
    versions = json.loads((root / "simple/shared-3/index.json").read_text())["versions"]
    assert versions == [f"1.0.{v}" for v in range(5)] + [f"2.0.{v}" for v in range(5)]


def test_sigkill_during_the_very_first_publish_into_an_empty_folder(tmp_path: Path) -> None:
    """The first publish into an empty folder, killed after its first file landed: the index it leaves has
    a project list (`index check` used to fail with "no project list"), and a re-run completes it."""
    root = tmp_path / "index"
    batch_dir = tmp_path / "batch"
    batch = make_wheels(batch_dir, projects=20, versions=5)
    record = verify_record(tmp_path / "batch.json", batch)
    process = subprocess.Popen(
        _publish_command(batch_dir, root, record),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    for line in process.stderr:
        if line.startswith("index: added "):
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=PUBLISH_TIMEOUT)
    assert check_index(root) == []
    rerun = subprocess.run(
        _publish_command(batch_dir, root, record), capture_output=True, text=True, timeout=PUBLISH_TIMEOUT
    )
    assert rerun.returncode == 0, rerun.stderr
    assert check_index(root) == [] and _listed_files(root) == {w.name for w in batch}
