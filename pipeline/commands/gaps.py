from __future__ import annotations

from pathlib import Path

import click


@click.command(name="gaps")
@click.option(
    "--requirements",
    "-r",
    "requirements",
    required=True,
    type=click.Path(path_type=Path),
    help="A requirements file (pins, ranges, markers; dependencies are resolved too).",
)
@click.option("--target", "-t", required=True, help="Target name (see `rewheel targets`).")
@click.option("--python", "-p", "python", default="3.11", show_default=True, help="CPython version.")
@click.option(
    "--recipes",
    "recipes_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Recipe folder to match against (default: recipes/ of the project).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def command(requirements: Path, target: str, python: str, recipes_dir: Path | None, as_json: bool) -> None:
    """Say which distributions of a requirements file have a wheel for the target and which need a build.

    Resolves the file for the target's environment (its markers and tags, not this machine's) with uv, then
    gives each distribution of the resolved set, dependencies included, a status: upstream-wheel (a wheel on
    the index fits the target), pure (py3-none-any), needs-build (only an sdist fits) or unavailable; and the
    recipe that builds it, if there is one. Exit 0 when nothing is unavailable, 1 otherwise.
    """
    from pipeline.gaps import NEEDS_BUILD, STATUSES, UNAVAILABLE, check_python, find_gaps
    from pipeline.output import emit_json, progress, table
    from pipeline.targets import get_target

    get_target(target)  # bad input is one line, before any progress
    check_python(python)
    if not as_json:
        progress(f"gaps: resolving {requirements} for {target} / Python {python}")
    report = find_gaps(requirements, target, python, recipes_dir=recipes_dir)
    if as_json:
        emit_json(report.to_json())
    else:
        rows = []
        for gap in report.requirements:
            recipe = "-"
            if gap.recipe:
                recipe = str(gap.recipe) + ("" if gap.recipe_has_version else " (version not listed)")
            elif gap.status == NEEDS_BUILD:
                recipe = "none: `rewheel recipe new` writes one"
            rows.append((gap.name, gap.version, gap.status, gap.file.filename if gap.file else "-", recipe))
        click.echo(table(rows, ["name", "version", "status", "file", "recipe"]))
        counts = ", ".join(f"{report.count(s)} {s}" for s in STATUSES if report.count(s))
        click.echo(
            f"{len(report.requirements)} distribution(s) for {report.target} / Python {python}: {counts}"
        )
    if report.count(UNAVAILABLE):
        raise SystemExit(1)
