from __future__ import annotations

from pathlib import Path

import click


@click.command(name="fetch")
@click.argument("recipes", nargs=-1, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the cached paths as JSON.")
def command(recipes: tuple[Path, ...], as_json: bool) -> None:
    """Download every pinned source (and native library) of the recipes into the cache, verifying sha256."""
    from pipeline.fetch import fetch, pin_for_source
    from pipeline.log import log
    from pipeline.output import emit_json
    from pipeline.recipe import load_recipes

    log.configure(enabled=not as_json)  # --json: stdout carries the JSON and stderr stays quiet
    fetched = []
    for recipe in load_recipes(list(recipes)):
        for source in recipe.source:
            path = fetch(pin_for_source(source, recipe.name))
            fetched.append({"recipe": recipe.name, "version": source.version, "path": str(path)})
        for library in recipe.native:
            path = fetch(pin_for_source(library, library.name))
            fetched.append({"recipe": recipe.name, "native": library.name, "path": str(path)})
    if as_json:
        emit_json({"fetched": fetched})
    else:
        for item in fetched:
            click.echo(item["path"])
