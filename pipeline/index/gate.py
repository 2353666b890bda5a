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
from pipeline.index.wheelinfo import PublishError


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


def verdicts_from_record(record: Path) -> dict[str, bool]:
    """File name -> ok, from `rewheel verify --json` output (DESIGN.md's `results` shape)."""
    try:
        document = json.loads(record.read_text(encoding="utf-8"))
        return {Path(str(item["wheel"])).name: bool(item["ok"]) for item in document["results"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PublishError(f"{record}: not a `rewheel verify --json` record: {exc}") from None


def check_verified(wheel: Path, target: str) -> tuple[bool, str]:
    """Run the symbol checker: (ok, a one-line summary of its first error when not ok)."""
    import importlib

    try:
        verify_wheel = getattr(importlib.import_module("pipeline.verify"), "verify_wheel", None)
    except ImportError:
        verify_wheel = None
    if verify_wheel is None:
        raise PublishError(
            f"{wheel.name}: cannot verify it (the symbol checker pipeline.verify is not available); "
            "pass --verified-by a `rewheel verify --json` record"
        )
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
