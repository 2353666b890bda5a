from __future__ import annotations

from pathlib import Path

import click


@click.command(name="serve")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="0 picks a free port."
)
@click.option(
    "--pages",
    type=click.Choice(["json", "html", "both"]),
    default="both",
    show_default=True,
    help="Which Simple API page formats to offer (html: behave like a plain static host).",
)
def command(root: Path, host: str, port: int, pages: str) -> None:
    """Serve a static index folder over HTTP, with PEP 691 content negotiation (JSON or HTML pages).

    For development and CI; see docs/index.md for nginx and S3 settings in production.
    """
    from pipeline.index.server import serve_forever

    if not (root / "simple").is_dir():
        from pipeline.index.wheelinfo import PublishError

        raise PublishError(f"{root}: not an index root (no simple/ folder); publish into it first")
    try:
        offered = ("json", "html") if pages == "both" else (pages,)
        serve_forever(root.resolve(), host, port, pages=offered)
    except OSError as exc:
        from pipeline.index.wheelinfo import PublishError

        raise PublishError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
