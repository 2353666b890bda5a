from __future__ import annotations

from pathlib import Path

import click


@click.command(name="report")
@click.argument("root", required=False, default="index", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print every file with its verdict as JSON.")
def command(root: Path, as_json: bool) -> None:
    """What the index at ROOT (default: index/) proves, as the landing page's matrix: one row per package and
    target / Python, saying built here or upstream, verified, imported, or why not. Read from the proof
    records beside each file; nothing is re-verified. Channels (ROOT/<channel>/) are included."""
    from pipeline.index.landing import channels_of, collect
    from pipeline.index.pages import _version_key
    from pipeline.index.wheelinfo import PublishError
    from pipeline.output import emit_json, table

    if not (root / "simple").is_dir() and not channels_of(root):
        raise PublishError(f"{root}: not an index root (no simple/ folder); publish into it first")
    matrix = collect(root)
    if as_json:
        emit_json(matrix.to_json())
        return
    rows = [
        (
            c.project,
            c.version + (" (yanked)" if c.yanked else ""),
            c.target,
            c.python,
            c.channel or "",
            c.verdict.label,
            c.verdict.why_not,
        )
        for c in sorted(
            matrix.cells,
            key=lambda c: (c.project, c.target, c.python, c.channel or "", _version_key(c.version)),
        )
    ]  # every file (the page's matrix shows each cell's newest version; its package pages show all)
    if rows:
        click.echo(table(rows, ["package", "version", "target", "python", "channel", "proof", "why not"]))
    proven = sum(1 for c in matrix.cells if c.state == "proven")
    click.echo(
        f"{root}: {len(matrix.projects)} package(s), {len(matrix.cells)} file(s), {proven} verified and imported"
    )
