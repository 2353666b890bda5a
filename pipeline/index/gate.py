"""The publishing gate: a wheel enters an index only when the symbol checker passed it for its target.

The target is the one the caller names, or the one the wheel's platform tag implies (for a tag several
targets share, e.g. win_amd64 for desktop, Server Core and Nano Server, or musllinux_1_2_x86_64 for the
default and the musl 1.2.3 profile, the channel decides; without a channel the target that has none, i.e.
the default one).
"""

from __future__ import annotations

import json
from pathlib import Path

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from pipeline.errors import RewheelError
from pipeline.index.wheelinfo import PublishError, wheel_identity
from pipeline.util import sha256_file


def infer_target(wheel: Path, channel: str | None = None) -> str:
    """The target the wheel's tags are for, in `channel` (pipeline.targets.target_for_tags: one rule)."""
    from pipeline.targets import target_for_tags

    try:
        _, _, _, tags = parse_wheel_filename(wheel.name)
    except InvalidWheelFilename as exc:
        raise PublishError(f"{wheel.name}: not a valid wheel file name: {exc}") from None
    try:
        return target_for_tags(tags, channel).name
    except RewheelError as exc:
        raise PublishError(f"{wheel.name}: {exc}") from None


def verdicts_from_record(record: Path) -> dict[str, tuple[bool, str | None]]:
    """File name -> (ok, sha256 of the file verified), from `rewheel verify --json` output (docs/verify.md's
    `results` shape). A record made before verify recorded hashes gives None for the sha256."""
    try:
        document = json.loads(record.read_text(encoding="utf-8"))
        verdicts: dict[str, tuple[bool, str | None]] = {}
        for item in document["results"]:
            name = Path(str(item["wheel"])).name
            sha256 = item.get("sha256")
            ok = bool(item["ok"]) and (
                name not in verdicts or verdicts[name][0]
            )  # one failure fails the file
            verdicts[name] = (ok, str(sha256) if sha256 else None)
        return verdicts
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PublishError(f"{record}: not a `rewheel verify --json` record: {exc}") from None


def verdicts_for(wheels: list[Path], record: Path) -> dict[Path, bool]:
    """The record's verdict for each wheel, given only for the bytes that were verified: a wheel whose
    sha256 is not the one the record holds (changed after verification, or a record without hashes) and a
    file name verify refuses are refused here, before anything is published."""
    from pipeline.verify.wheelname import wheel_tags

    verdicts = verdicts_from_record(record)
    result: dict[Path, bool] = {}
    for wheel in wheels:
        wheel_identity(wheel.name)  # publish's own refusal of a name first (the same one as without a record)
        wheel_tags(wheel.name)  # then the names verify refuses (InvalidWheelName, one line)
        if wheel.name not in verdicts:
            raise PublishError(f"{record} has no verdict for {wheel.name}")
        ok, recorded = verdicts[wheel.name]
        if recorded is None:
            raise PublishError(
                f"{record}: no sha256 recorded for {wheel.name}; verify it again with this rewheel "
                "(`rewheel verify --json` records the hash of what it verified)"
            )
        actual = sha256_file(wheel)
        if actual != recorded:
            raise PublishError(
                f"{wheel.name}: changed since it was verified (sha256 {actual}, the record says {recorded}); "
                "verify it again"
            )
        result[wheel] = ok
    return result


def check_verified(wheel: Path, target: str) -> tuple[bool, str]:
    """Run the symbol checker: (ok, a one-line summary of its first error when not ok)."""
    from pipeline.verify import verify_wheel

    try:
        report = verify_wheel(wheel, target)
    except RewheelError as exc:
        return False, str(exc)
    if report.ok:
        return True, ""
    errors = [f for f in report.findings if f.severity == "error"]
    first = errors[0] if errors else None
    summary = f"{first.code}: {first.message}" if first else "verify reported it not ok"
    return False, summary
