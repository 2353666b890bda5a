from __future__ import annotations

from pathlib import Path

import click

from pipeline.ci_matrix import ARM_MODES


@click.command(name="ci-matrix")
@click.argument("recipes", nargs=-1, type=click.Path(path_type=Path))
@click.option("--target", "-t", "targets", multiple=True, help="Only these targets (names or patterns).")
@click.option(
    "--from-plan",
    "plan_file",
    type=click.Path(dir_okay=False, path_type=Path, allow_dash=True),
    help="Read a saved `rewheel plan --json` (or '-' for stdin) instead of planning the recipes.",
)
@click.option(
    "--arm64",
    type=click.Choice(ARM_MODES),
    default="native",
    show_default=True,
    help="native: aarch64 jobs on arm64 runners; qemu: on x86_64 runners with QEMU emulation.",
)
@click.option(
    "--github-output",
    is_flag=True,
    help="Also append matrix=<json> and count=<n> to $GITHUB_OUTPUT for later jobs.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the matrix as JSON.")
def command(
    recipes: tuple[Path, ...],
    targets: tuple[str, ...],
    plan_file: Path | None,
    arm64: str,
    github_output: bool,
    as_json: bool,
) -> None:
    """The GitHub Actions build matrix: each planned job with the runner that can build its target."""
    from pipeline.ci_matrix import github_matrix, load_plan, matrix_entries, write_github_output
    from pipeline.errors import RewheelError
    from pipeline.log import log
    from pipeline.output import emit_json, table

    if plan_file is not None:
        if recipes or targets:
            raise RewheelError(
                "--from-plan takes the jobs from the plan: give no recipes or --target with it"
            )
        jobs = load_plan(plan_file)
    else:
        from pipeline.builders.backends.cibuildwheel_ids import job_json
        from pipeline.plan import plan
        from pipeline.recipe import load_recipes

        jobs = [job_json(job) for job in plan(load_recipes(list(recipes)), list(targets) or None)]
    entries = matrix_entries(jobs, arm64=arm64)  # type: ignore[arg-type]  # click.Choice guarantees the value
    if github_output:
        written = write_github_output(entries)
        log.say(f"wrote a matrix of {len(entries)} job(s) to {written}")
    if as_json:
        emit_json({"count": len(entries), "matrix": github_matrix(entries)})
        return
    rows = [
        (e.id, " ".join(e.versions), e.runner, "qemu" if e.qemu else "native", e.backend) for e in entries
    ]
    click.echo(table(rows, ["job", "versions", "runner", "arm64", "backend"]))
    click.echo(f"{len(entries)} CI job(s) covering {sum(len(e.jobs) for e in entries)} planned job(s)")
