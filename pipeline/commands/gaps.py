from __future__ import annotations

import os
from pathlib import Path

import click

INDEX_URL_HELP = (
    "The index to resolve and fetch from (default: REWHEEL_INDEX_URL, else PIP_INDEX_URL, else pip's default "
    "index). Never taken from a requirements file or a pip.conf."
)


def use_index(index_url: str | None, extra_index_urls: tuple[str, ...]) -> None:
    """Make --index-url / --extra-index-url rewheel's index settings for this process, so the resolver and
    the fetch layer read the same ones (pipeline.upstream_index)."""
    if index_url:
        os.environ["REWHEEL_INDEX_URL"] = index_url
    if extra_index_urls:
        os.environ["REWHEEL_EXTRA_INDEX_URL"] = " ".join(extra_index_urls)


@click.command(name="gaps")
@click.option(
    "--requirements",
    "-r",
    "requirements",
    required=True,
    type=click.Path(path_type=Path),
    help="A requirements file (pins, ranges, markers, --hash; dependencies are resolved too).",
)
@click.option("--target", "-t", required=True, help="Target name (see `rewheel targets`).")
@click.option("--python", "-p", "python", default="3.11", show_default=True, help="CPython version.")
@click.option(
    "--recipes",
    "recipes_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Recipe folder to match against (default: recipes/ of the project).",
)
@click.option("--index-url", "-i", "index_url", help=INDEX_URL_HELP)
@click.option("--extra-index-url", "extra_index_urls", multiple=True, help="Another index (repeatable).")
@click.option(
    "--no-verify",
    is_flag=True,
    help="Do not put fitting upstream wheels through verify (build -r still does).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def command(
    requirements: Path,
    target: str,
    python: str,
    recipes_dir: Path | None,
    index_url: str | None,
    extra_index_urls: tuple[str, ...],
    no_verify: bool,
    as_json: bool,
) -> None:
    """Say which distributions of a requirements file have a wheel for the target and which need a build.

    Resolves the file for the target's environment (its markers and tags, not this machine's) with uv, then
    gives each distribution of the resolved set, dependencies included, a status: upstream-wheel (a wheel on
    the index fits the target and passes verify for it), pure (py3-none-any), needs-build (only an sdist fits)
    or unavailable; and the recipe that builds it, if there is one. The file is read as pip reads it, with
    pip's hash-checking mode; index options inside it are refused. No package code runs: uv never builds.
    Exit 0 when nothing is unavailable, 1 otherwise, 2 for a refused file.
    """
    from pipeline.gaps import NEEDS_BUILD, STATUSES, UNAVAILABLE, check_python, find_gaps
    from pipeline.log import log
    from pipeline.output import emit_json, table
    from pipeline.requirements import read_requirements
    from pipeline.targets import get_target

    get_target(target)  # bad input is one line, before any progress
    check_python(python)
    use_index(index_url, extra_index_urls)
    checked = read_requirements(requirements)
    if not as_json:
        log.say(f"gaps: resolving {requirements} for {target} / Python {python}")
    report = find_gaps(checked, target, python, recipes_dir=recipes_dir, verify=not no_verify)
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
        for gap in report.requirements:
            for filename, finding in gap.rejected:
                click.echo(f"{gap.name}: {filename} fits by tag but fails verify for {target}: {finding}")
        counts = ", ".join(f"{report.count(s)} {s}" for s in STATUSES if report.count(s))
        click.echo(
            f"{len(report.requirements)} distribution(s) for {report.target} / Python {python}: {counts}"
        )
    if report.count(UNAVAILABLE):
        raise SystemExit(1)
