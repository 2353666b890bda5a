from __future__ import annotations

from pathlib import Path

import click


@click.group(name="recipe")
def command() -> None:
    """Write recipes (`rewheel recipes check` validates them)."""


@command.command(name="new")
@click.argument("requirement")
@click.option(
    "--target",
    "-t",
    "targets",
    multiple=True,
    help="Targets the recipe builds for (repeatable; default: musllinux_1_2_x86_64 and _aarch64).",
)
@click.option("--python", "-p", "pythons", multiple=True, help='CPython versions (default "3.11").')
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder to write the recipe into (default: recipes/ of the project).",
)
@click.option(
    "--recipes",
    "recipes_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="The existing recipes (default: recipes/ of the project).",
)
@click.option(
    "--no-build",
    is_flag=True,
    help="Do not build the recipe once to find its test imports (the recipe then needs review: exit 4).",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def new(
    requirement: str,
    targets: tuple[str, ...],
    pythons: tuple[str, ...],
    output: Path | None,
    recipes_dir: Path | None,
    no_build: bool,
    as_json: bool,
) -> None:
    """Write a recipe for NAME==VERSION from its sdist on the index.

    The recipe pins the sdist's file name and sha256, lists the targets, names the build backend and what
    the zig backend would refuse, and carries the pinned [[native]] entries of libraries it recognises
    (libffi, zlib, ...). Its [test] comes from building it once with the zig backend for the first target
    and Python: the wheel's packages and extension modules, imported on the target, with any distribution
    they need as a [test] requires line pinned by hash. When a recipe for the project exists, the version is
    added to it as another [[source]] instead.

    Exit 0: recipe written and complete; 4: recipe written, but its [test] needs review (the line printed
    and a TO COMPLETE comment in the file say what is missing); 2: unusable input.
    """
    from pipeline.errors import EXIT_NEEDS_REVIEW
    from pipeline.output import emit_json
    from pipeline.recipe_new import write_recipe

    written = write_recipe(
        requirement,
        targets=list(targets) or None,
        pythons=list(pythons) or None,
        output=output,
        recipes_dir=recipes_dir,
        build=not no_build,
    )
    if as_json:
        emit_json(written.to_json())
    else:
        facts = written.facts
        if written.created:
            verb = "wrote"
        elif written.changed:
            verb = f"added version {facts.version} (and any missing targets/Pythons) to"
        else:
            verb = f"nothing to add: version {facts.version}, the targets and Pythons are already in"
        click.echo(f"{verb} {written.path}")
        click.echo(f"  sdist {facts.file.filename} sha256 {facts.file.sha256}")
        click.echo(f"  build backend {facts.build_backend}")
        if written.test is not None:
            test = written.test
            click.echo(f"  test imports {', '.join(test.imports) or '(none)'}")
            for line in test.requires:
                click.echo(f"  test requires {line}")
            if test.note:
                click.echo(f"  {test.note}")
        if written.natives_pinned:
            click.echo(f"  native libraries pinned: {', '.join(written.natives_pinned)}")
        if written.natives_unpinned:
            click.echo(
                f"  native libraries recognised but pinned by no recipe: {', '.join(written.natives_unpinned)}"
            )
        if facts.rust_crates:
            click.echo(f"  Rust: {facts.rust_crates}")
        for target, why in facts.refusals.items():
            click.echo(f"  zig backend refuses {target}: {why}")
    if written.needs_review:
        click.echo(f"rewheel: {written.path} needs review: {written.needs_review}", err=True)
        raise SystemExit(EXIT_NEEDS_REVIEW)
