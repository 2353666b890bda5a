from __future__ import annotations

from pathlib import Path

import click

QUARANTINE = "quarantine"  # the orchestrator's folder for wheels that failed verify or smoke


def _expand(paths: tuple[Path, ...]) -> tuple[list[Path], list[Path]]:
    """(wheels to verify, quarantined wheels skipped). A wheelhouse's quarantine/ holds rejected builds
    (stale ones too): they are skipped unless that folder is named itself, so a wheelhouse verifies as what
    it would publish."""
    wheels: list[Path] = []
    skipped: list[Path] = []
    for path in paths:
        if not path.is_dir():
            wheels.append(path)
            continue
        for wheel in sorted(path.rglob("*.whl")):
            if QUARANTINE in wheel.relative_to(path).parts[:-1]:
                skipped.append(wheel)
            else:
                wheels.append(wheel)
    return wheels, skipped


def _auto_targets(wheel: Path) -> list[str]:
    """Every target the wheel's own tags name (a compound tag: the oldest level it claims)."""
    from pipeline.errors import RewheelError
    from pipeline.targets import targets_for_tags
    from pipeline.verify.wheelname import wheel_tags

    targets = targets_for_tags(wheel_tags(wheel.name))
    if not targets:
        raise RewheelError(
            f"{wheel.name}: no target in the catalogue matches its platform tags; pass --target"
        )
    return [t.name for t in targets]


@click.command(name="verify")
@click.argument("wheels", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--target",
    "-t",
    "targets",
    multiple=True,
    required=True,
    help="Target name (repeatable); see `rewheel targets`.",
)
@click.option("--json", "as_json", is_flag=True, help='Print {"results": [...]} as JSON.')
@click.option("--quiet", "-q", is_flag=True, help="Only the one-line verdict per wheel.")
def command(wheels: tuple[Path, ...], targets: tuple[str, ...], as_json: bool, quiet: bool) -> int:
    """Predict loader errors: check each WHEEL (or every wheel under a folder) against each --target.

    Exit 0 when every wheel is clean, 1 when any has error findings, 2 for unusable input."""
    from pipeline.errors import EXIT_FINDINGS, EXIT_OK, RewheelError
    from pipeline.log import log
    from pipeline.output import emit_json
    from pipeline.targets import get_target
    from pipeline.verify import verify_wheel

    for name in targets:
        if name != "auto":
            get_target(name)  # an unknown target is a usage error before any work
    found, quarantined = _expand(wheels)
    if quarantined and not as_json:
        folders = sorted({str(w.parent) for w in quarantined})
        log.say(
            f"verify: skipped {len(quarantined)} quarantined wheel(s) in {', '.join(folders)} "
            "(name that folder to verify them)"
        )
    if not found:
        raise RewheelError(f"no wheels found in {', '.join(str(w) for w in wheels)}")
    reports = []
    # The same file name in two folders (channels) is told apart by its path.
    names = [wheel.name for wheel in found]
    labels = []
    for wheel in found:
        chosen = [name for t in targets for name in (_auto_targets(wheel) if t == "auto" else [t])]
        for target in chosen:
            if len(found) * len(targets) > 1 and not as_json:
                log.say(f"verify: {wheel.name} for {target}")
            reports.append(verify_wheel(wheel, target))
            labels.append(str(wheel) if names.count(wheel.name) > 1 else wheel.name)
    if as_json:
        emit_json({"results": [r.to_json() for r in reports]})
    else:
        for report, label in zip(reports, labels, strict=True):
            verdict = "ok" if report.ok else "FAIL"
            click.echo(
                f"{label} on {report.target}: {verdict} ({len(report.errors)} errors, "
                f"{len(report.warnings)} warnings, {report.binaries} binaries checked)"
            )
            if quiet:
                continue
            for finding in report.findings:
                click.echo(f"  {finding.severity}: [{finding.code}] {finding.message}")
    return EXIT_OK if all(r.ok for r in reports) else EXIT_FINDINGS
