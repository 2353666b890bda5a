from __future__ import annotations

from pathlib import Path

import click


@click.command(name="publish")
@click.argument("wheels", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--to", "to", required=True, help="A folder (static index root) or an upload URL (twine).")
@click.option("--channel", default=None, help="Publish into <folder>/<channel>/ (default: the target's own).")
@click.option("--target", default=None, help="The target the wheels were built for (default: from the tag).")
@click.option(
    "--verified-by",
    "record",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A `rewheel verify --json` record to take verdicts from instead of verifying again.",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was published as JSON.")
def command(
    wheels: tuple[Path, ...],
    to: str,
    channel: str | None,
    target: str | None,
    record: Path | None,
    as_json: bool,
) -> None:
    """Publish verified wheels (files or wheelhouse folders) to a private index.

    A folder gets a static PEP 503/691/658 index any web server can serve (`rewheel serve` for a quick
    one); an http(s) URL is uploaded to with twine, credentials from REWHEEL_INDEX_USERNAME /
    REWHEEL_INDEX_PASSWORD, TWINE_USERNAME / TWINE_PASSWORD or keyring. Published files are immutable.
    """
    from pipeline.errors import EXIT_FINDINGS
    from pipeline.index import publish
    from pipeline.index.gate import verdicts_for
    from pipeline.index.static import iter_wheels
    from pipeline.index.wheelinfo import PublishError
    from pipeline.output import emit_json, table

    paths = iter_wheels(wheels)
    if not paths:
        raise PublishError(f"no wheels in {', '.join(str(w) for w in wheels)}")
    verified = verdicts_for(paths, record) if record is not None else None
    result = publish(paths, to, channel=channel, verified=verified, target=target)
    unconfirmed = result.unconfirmed
    if as_json:
        emit_json(result.to_json())
    else:
        rows = [(f["filename"], f["status"], f.get("channel") or "") for f in result.files]
        click.echo(table(rows, ["file", "status", "channel"]))
        click.echo(
            f"{len(result.added)} new, {len(result.files) - len(result.added) - len(unconfirmed)} already "
            f"there: {result.destination}"
        )
    if unconfirmed:
        # uploaded, but the server's page does not list these bytes: not a success to build on
        click.echo(
            f"rewheel: error: upload unconfirmed: {', '.join(unconfirmed)} (the server's page does not list "
            "the file with its sha256)",
            err=True,
        )
        raise SystemExit(EXIT_FINDINGS)
