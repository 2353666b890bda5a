from __future__ import annotations

from pathlib import Path

import click


@click.group(name="profiles")
def command() -> None:
    """The symbol checker's runtime profiles: list them, regenerate them, capture Windows DLL exports."""


@command.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print profiles and provenance as JSON.")
def list_command(as_json: bool) -> None:
    """Each profile, the targets using it, where its data comes from and how to regenerate it."""
    from pipeline.output import emit_json
    from pipeline.profiles import list_profiles

    rows = list_profiles()
    if as_json:
        emit_json({"profiles": rows})
        return
    for row in rows:
        click.echo(f"{row['name']}  ({row['kind']}; targets: {', '.join(row['targets'])})")
        click.echo(f"    source:     {row['source']}")
        click.echo(f"    regenerate: {row['regenerate']}")


@command.command(name="regenerate")
@click.argument("name")
@click.argument("sources", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write here instead of the package's data folder.",
)
def regenerate_command(name: str, sources: tuple[Path, ...], out_dir: Path | None) -> None:
    """Rebuild profile NAME's committed data from its public source (optional SOURCES: libc.so or
    libpython files for a musl_* profile / cpython)."""
    from pipeline.profiles.generate import regenerate

    path = regenerate(name, sources=list(sources) or None, out_dir=out_dir)
    click.echo(str(path))


@command.command(name="capture-pe")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", required=True, help="Profile name, e.g. windows_nanoserver_amd64.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write here instead of the package's data folder.",
)
def capture_command(directory: Path, name: str, out_dir: Path | None) -> None:
    """Build a Windows profile from a folder of real DLLs (e.g. System32 copied out of a container)."""
    from pipeline.profiles.generate import capture_pe

    click.echo(str(capture_pe(directory, name, out_dir)))
