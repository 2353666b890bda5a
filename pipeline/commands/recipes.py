from __future__ import annotations

from pathlib import Path

import click

from pipeline.errors import EXIT_USAGE, RecipeError


@click.group(name="recipes")
def command() -> None:
    """Validate recipes and print their JSON Schema."""


@command.command(name="check")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def check(paths: tuple[Path, ...], as_json: bool) -> None:
    """Validate recipes (default: recipes/): schema, patch files and their sha256, target names,
    and an acyclic dependency graph. Exit 0 when all are valid, 2 otherwise."""
    from pipeline.output import emit_json
    from pipeline.plan import build_order
    from pipeline.recipe import check_patch_files, check_targets, load_recipe, recipe_paths

    problems: list[str] = []
    recipes = []
    files = recipe_paths(list(paths))
    if not files:
        raise RecipeError(f"no recipes found in {', '.join(map(str, paths)) or 'recipes/'}")
    defined: dict[str, Path] = {}
    for path in files:
        try:
            recipe = load_recipe(path)
        except RecipeError as exc:
            problems.append(str(exc))
            continue
        if recipe.normalized_name in defined:  # one project, one recipe (names compare normalised)
            problems.append(
                f"{path}: recipe {recipe.name!r} is the same project as {defined[recipe.normalized_name]}"
            )
            continue
        defined[recipe.normalized_name] = path
        recipes.append(recipe)
        problems += check_targets(recipe)
        problems += check_patch_files(recipe)
    if not problems:
        try:
            build_order(recipes)
        except RecipeError as exc:
            problems.append(str(exc))
    if as_json:
        emit_json({"ok": not problems, "recipes": [str(p) for p in files], "problems": problems})
    else:
        for problem in problems:
            click.echo(f"rewheel: error: {problem}", err=True)
        if not problems:
            click.echo(f"{len(files)} recipe(s) valid: {', '.join(r.name for r in recipes)}")
    if problems:
        raise SystemExit(EXIT_USAGE)


@command.command(name="schema")
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Write to a file instead of stdout.")
def schema(output: Path | None) -> None:
    """Print the JSON Schema of the recipe format (for editor completion)."""
    import json

    from pipeline.recipe import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)
