"""`rewheel build -r`: the printing side of pipeline/wheelhouse.py (kept out of build.py, which only routes)."""

from __future__ import annotations

from pathlib import Path

import click


def build_from_requirements(
    requirements: Path,
    *,
    targets: tuple[str, ...],
    pythons: tuple[str, ...],
    backend: str,
    wheelhouse: Path | None,
    publish_to: str | None,
    recipes_dir: Path | None,
    new_recipes: Path | None,
    no_smoke: bool,
    force: bool,
    as_json: bool,
) -> None:
    from packaging.utils import canonicalize_name

    from pipeline.errors import EXIT_FINDINGS, RewheelError
    from pipeline.output import emit_json, table
    from pipeline.wheelhouse import build_wheelhouse

    if len(targets) != 1 or len(pythons) > 1:
        raise RewheelError("build -r needs exactly one --target and at most one --python (default 3.11)")
    result = build_wheelhouse(
        requirements,
        targets[0],
        pythons[0] if pythons else "3.11",
        publish_to=publish_to,
        recipes_dir=recipes_dir,
        new_recipes_dir=new_recipes,
        wheelhouse=wheelhouse,
        backend=backend,
        smoke=not no_smoke,
        force=force,
    )
    if as_json:
        emit_json(result.to_json())
    else:
        built = {}
        if result.summary:
            for outcome in result.summary.outcomes:
                built[(outcome.job.recipe.normalized_name, outcome.job.version)] = outcome
        upstream = {(u.gap.name, u.gap.version): u for u in result.upstream}
        review: dict[str, str] = {
            str(canonicalize_name(w.facts.project)): w.needs_review for w in result.written
        }
        rows = []
        for gap in result.report.requirements:
            key = (gap.name, gap.version)
            reason = result.reasons.get(gap.name, "")
            if key in built:
                outcome = built[key]
                wheel = ", ".join(w.name for w in outcome.wheels) or "-"
                state = outcome.status if outcome.ok else f"{outcome.status} ({outcome.stage})"
                origin = f"rewheel ({result.recipes.get(gap.name)})"
            elif key in upstream:
                wheel, state, origin = (
                    upstream[key].path.name,
                    "verified" if upstream[key].ok else "FAILED verify",
                    "upstream",
                )
            else:
                wheel, state, origin = "-", "refused" if reason else "not built", "-"
            if not reason and review.get(gap.name):
                reason = f"recipe needs review: {review[gap.name]}"
            rows.append((gap.name, gap.version, gap.status, origin, state, wheel, reason or "-"))
        click.echo(table(rows, ["name", "version", "status", "from", "result", "wheel", "reason"]))
        for written in result.written:
            verb = "written" if written.created else "version added" if written.changed else "unchanged"
            check = f"; needs review: {written.needs_review}" if written.needs_review else ""
            click.echo(f"recipe {verb}: {written.path} (review it, then commit it under recipes/{check})")
        if result.published:
            click.echo(f"published a complete wheelhouse to {result.published.destination}")
        elif publish_to:
            lacking = ", ".join(result.missing) or "nothing, but some distributions failed"
            click.echo(f"not published to {publish_to}: no good wheel for {lacking}", err=True)
    for problem in result.problems:
        click.echo(f"rewheel: {problem}", err=True)
    if not result.ok:
        raise SystemExit(EXIT_FINDINGS)
