from __future__ import annotations

from pathlib import Path

import click


@click.group(name="index")
def command() -> None:
    """Maintain a static index folder: rebuild it from its files, check it for consistency."""


@command.command(name="rebuild")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
def rebuild(root: Path, as_json: bool) -> None:
    """Re-index ROOT from the wheels under ROOT/files/ alone (metadata files, pages, state)."""
    from pipeline.index.static import StaticIndex
    from pipeline.output import emit_json

    counts = StaticIndex(root).rebuild()
    if as_json:
        emit_json({"index": str(root), **counts})
    else:
        click.echo(f"{root}: {counts['projects']} projects, {counts['files']} files")


@command.command(name="check")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
def check(root: Path, as_json: bool) -> None:
    """Check that every page parses and every link resolves to a file with the advertised hash (exit 1 if not).

    Proof records too: each linked one must exist, match its hash and name its file's sha256. A file without
    one (published before rewheel wrote proof records) is a warning, not a problem; `rewheel publish` of the
    same file adds its record."""
    import sys

    from pipeline.errors import EXIT_FINDINGS
    from pipeline.index.static import check_index
    from pipeline.output import emit_json

    warnings: list[str] = []
    problems = check_index(root, warnings)
    if as_json:
        emit_json({"index": str(root), "ok": not problems, "problems": problems, "warnings": warnings})
    else:
        for problem in problems:
            click.echo(problem)
        for warning in warnings:
            click.echo(f"warning: {warning}")
        click.echo(f"{root}: {'consistent' if not problems else f'{len(problems)} problem(s)'}")
    if problems:
        sys.exit(EXIT_FINDINGS)


@command.command(name="nginx-config")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--listen", default="127.0.0.1:8080", show_default=True, help="nginx's listen address.")
@click.option(
    "--standalone",
    "runtime",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write a whole nginx.conf that keeps its pid, logs and temporaries in this folder.",
)
def nginx_config(root: Path, listen: str, runtime: Path | None) -> None:
    """Print nginx settings that serve ROOT as a Simple Repository (PEP 503/691), as `rewheel serve` does.

    Without --standalone: a map and a server block for nginx's http context (Debian:
    /etc/nginx/conf.d/rewheel-index.conf). See docs/index.md.
    """
    from pipeline.index import nginx
    from pipeline.index.wheelinfo import PublishError

    if not (root / "simple").is_dir():
        raise PublishError(f"{root}: not an index root (no simple/ folder); publish into it first")
    if runtime is None:
        click.echo(nginx.site(root, listen), nl=False)
    else:
        runtime.mkdir(parents=True, exist_ok=True)
        click.echo(nginx.standalone(root, listen, runtime), nl=False)
