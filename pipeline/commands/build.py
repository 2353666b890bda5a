from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from pipeline.builders.backends import BACKEND_CHOICES

if TYPE_CHECKING:
    from pipeline.builders.orchestrator import RunSummary
    from pipeline.plan import Job


@click.command(name="build")
@click.argument("recipes", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--target", "-t", "targets", multiple=True, help="Only these targets (names or shell patterns)."
)
@click.option("--python", "-p", "pythons", multiple=True, help='Only these Python versions ("3.11").')
@click.option(
    "--backend",
    type=click.Choice(BACKEND_CHOICES),
    default="auto",
    show_default=True,
    help="auto: wheel-source for wheel sources; cibuildwheel when a container engine works; else zig.",
)
@click.option(
    "--wheelhouse",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where wheels and their .build.json records go (default: wheelhouse/ or $REWHEEL_WHEELHOUSE).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON.")
@click.option("--no-smoke", is_flag=True, help="Do not import the wheels on their target runtimes.")
@click.option("--force", is_flag=True, help="Rebuild even when a build record says a job is up to date.")
@click.option(
    "--require-import",
    is_flag=True,
    help="Fail a job whose wheel cannot be imported on its target here (cannot-host, runtime error).",
)
@click.option(
    "--publish",
    "publish_to",
    help="After a successful run, publish the run's wheels to this static index folder (or upload URL).",
)
@click.option(
    "--requirements",
    "-r",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Build what this requirements file lacks for --target (see `rewheel gaps`); with --publish, publish "
    "a complete wheelhouse: rewheel's wheels plus the fitting upstream ones, all verified.",
)
@click.option(
    "--index-url",
    "index_url",
    help="With -r: the index to resolve and fetch from (default: REWHEEL_INDEX_URL, else PIP_INDEX_URL, else "
    "pip's default index); never taken from the requirements file or a pip.conf.",
)
@click.option(
    "--recipes",
    "recipes_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="With -r: your recipes folder, searched first (default: recipes/ of the nearest folder above the "
    "current one that has one).",
)
@click.option(
    "--new-recipes",
    type=click.Path(path_type=Path, file_okay=False),
    help="With -r: the review folder, searched second; recipes written on the fly go there and are never "
    "rewritten (default: recipes-new/ beside the recipes folder).",
)
@click.option(
    "--print-cibuildwheel-config",
    is_flag=True,
    help="Print the cibuildwheel options each job would get (CIBW_* variables), then stop.",
)
def command(
    recipes: tuple[Path, ...],
    targets: tuple[str, ...],
    pythons: tuple[str, ...],
    backend: str,
    wheelhouse: Path | None,
    as_json: bool,
    no_smoke: bool,
    force: bool,
    require_import: bool,
    publish_to: str | None,
    requirements: Path | None,
    index_url: str | None,
    recipes_dir: Path | None,
    new_recipes: Path | None,
    print_cibuildwheel_config: bool,
) -> None:
    """Build wheels: fetch, patch, build, repair, verify and smoke-test each job, into the wheelhouse.

    One job = recipe x target x Python, in plan order. Jobs whose build record still matches their inputs are
    skipped. A wheel failing verify (or smoke) goes to WHEELHOUSE/quarantine/ with its report. Exit 0 when
    every job succeeded, 1 when any failed (they are named), 2 for unusable input.
    """
    from pipeline.errors import EXIT_FINDINGS, RewheelError
    from pipeline.plan import plan

    if require_import and no_smoke:
        raise RewheelError("--require-import needs the smoke stage; drop --no-smoke")
    from pipeline.recipe import load_recipes

    if requirements is None and (recipes_dir is not None or new_recipes is not None):
        raise RewheelError(
            "--recipes and --new-recipes go with -r REQUIREMENTS; without it, name the recipes"
        )
    if requirements is not None:
        if recipes:
            raise RewheelError(
                "give recipes or -r REQUIREMENTS, not both (with -r, --recipes DIR names your recipes folder)"
            )
        from pipeline.commands._wheelhouse import build_from_requirements
        from pipeline.commands.gaps import use_index

        use_index(index_url, ())

        build_from_requirements(
            requirements, targets=targets, pythons=pythons, backend=backend, wheelhouse=wheelhouse,
            publish_to=publish_to, recipes_dir=recipes_dir, new_recipes=new_recipes, no_smoke=no_smoke,
            force=force, as_json=as_json,
        )  # fmt: skip
        return

    jobs = plan(load_recipes(list(recipes)), list(targets) or None)
    if pythons:
        from pipeline.plan import ANY_PYTHON

        jobs = [j for j in jobs if j.python in pythons or j.python == ANY_PYTHON]
    if not jobs:
        raise RewheelError("no jobs: the recipes list none of the targets/Pythons asked for")

    if print_cibuildwheel_config:
        _print_cibuildwheel_config(jobs, as_json)
        return

    from pipeline.builders.orchestrator import run_jobs
    from pipeline.paths import default_wheelhouse

    summary = run_jobs(
        jobs,
        backend=backend,
        wheelhouse=wheelhouse or default_wheelhouse(),
        smoke=not no_smoke,
        force=force,
        require_import=require_import,
    )
    published = None
    unconfirmed: list[str] = []  # uploaded files the server's page does not list with their sha256
    if publish_to and summary.ok:
        published = _publish(summary, publish_to, unconfirmed)
    if as_json:
        from pipeline.output import emit_json

        data = summary.to_json()
        if published is not None:
            data["published"] = published
        emit_json(data)
    else:
        _print_summary(summary)
        if publish_to and not summary.ok:
            click.echo(f"not published to {publish_to}: the run had failed jobs", err=True)
    if unconfirmed:
        click.echo(f"rewheel: error: upload unconfirmed: {', '.join(unconfirmed)}", err=True)
    if not summary.ok or unconfirmed:
        raise SystemExit(EXIT_FINDINGS)


def _print_summary(summary: RunSummary) -> None:
    from pipeline.output import table

    rows = []
    for outcome in summary.outcomes:
        wheel = ", ".join(w.name for w in outcome.wheels) or "-"
        result = outcome.status if outcome.ok else f"{outcome.status} ({outcome.stage})"
        smoke = ", ".join(sorted({str(s.status) for s in outcome.smoke})) or "-"
        rows.append((outcome.job.id, outcome.backend or "-", result, smoke, wheel, f"{outcome.seconds:.1f}"))
    click.echo(table(rows, ["job", "backend", "result", "smoke", "wheel", "seconds"]))
    built = sum(o.status == "built" for o in summary.outcomes)
    fresh = sum(o.status == "up-to-date" for o in summary.outcomes)
    click.echo(
        f"{len(summary.outcomes)} job(s): {built} built, {fresh} up to date, {len(summary.failed)} failed "
        f"in {summary.seconds:.1f} s; wheelhouse {summary.wheelhouse}"
    )
    for outcome in summary.failed:
        message = outcome.message.removeprefix(f"{outcome.job.id}: ")
        click.echo(f"failed: {outcome.job.id} ({outcome.status} at {outcome.stage}): {message}", err=True)
    for line in summary.summary_lines():
        click.echo(line)


def _publish(summary: RunSummary, to: str, unconfirmed: list[str]) -> list[dict[str, object]]:
    """Publish per target, so the index knows each wheel's target (and channel: nanoserver and desktop
    builds share the win_amd64 tag) without guessing; every wheel here passed verify in this run or when
    its build record was written."""
    from pipeline.index import publish

    by_target: dict[str, list[Path]] = {}
    for outcome in summary.outcomes:
        by_target.setdefault(outcome.job.target, []).extend(outcome.wheels)
    results = []
    for target, wheels in by_target.items():
        if not wheels:
            continue
        result = publish(wheels, to, target=target, verified=dict.fromkeys(wheels, True))
        results.append(result.to_json())
        unconfirmed.extend(result.unconfirmed)
        click.echo(f"published {len(wheels)} {target} wheel(s) to {to}", err=True)
    return results


def _print_cibuildwheel_config(jobs: list[Job], as_json: bool) -> None:
    from pipeline.builders.backends.cibuildwheel import cibuildwheel_config

    configs = [(job, cibuildwheel_config(job)) for job in jobs if job.kind != "wheel"]
    if as_json:
        from pipeline.output import emit_json

        emit_json({"jobs": [{"job": job.id, "config": config} for job, config in configs]})
        return
    import shlex

    for job, config in configs:
        click.echo(f"# {job.id}")
        for name, value in config.items():
            click.echo(f"{name}={shlex.quote(value)}")
        click.echo("")
