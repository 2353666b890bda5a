from __future__ import annotations

from pathlib import Path

import click


@click.command(name="plan")
@click.argument("recipes", nargs=-1, type=click.Path(path_type=Path))
@click.option("--target", "-t", "targets", multiple=True, help="Only these targets (names or patterns).")
@click.option("--json", "as_json", is_flag=True, help="Print the job matrix as JSON.")
def command(recipes: tuple[Path, ...], targets: tuple[str, ...], as_json: bool) -> None:
    """The job matrix (recipe x target x Python) in build order."""
    from pipeline.builders.backends.cibuildwheel_ids import job_json
    from pipeline.output import emit_json, table
    from pipeline.plan import plan
    from pipeline.recipe import load_recipes

    jobs = plan(load_recipes(list(recipes)), list(targets) or None)
    if as_json:
        emit_json({"jobs": [job_json(job) for job in jobs]})
        return
    rows = [(j.recipe.name, j.version, j.kind, j.target, j.python) for j in jobs]
    click.echo(table(rows, ["recipe", "version", "kind", "target", "python"]))
    click.echo(f"{len(jobs)} job(s)")
