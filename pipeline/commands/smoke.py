"""`rewheel smoke`: import wheels on their target's own runtime (musl CPython, qemu-user, host CPython)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="smoke")
@click.argument("wheels", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--target", help="Target name (default: inferred from each wheel's platform tag).")
@click.option(
    "--import", "imports", multiple=True, help="Module to import (repeatable; default: all in the wheel)."
)
@click.option(
    "--command", "test_command", help="Shell command to run after the imports (`python` = the runtime)."
)
@click.option(
    "--require-import",
    is_flag=True,
    help="A wheel this machine cannot import (no runtime hosts its target) fails the command (exit 1).",
)
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
def command(
    wheels: tuple[Path, ...],
    target: str | None,
    imports: tuple[str, ...],
    test_command: str | None,
    require_import: bool,
    as_json: bool,
) -> int:
    """Install each WHEEL into a throwaway folder on its target's runtime and import its modules there.

    Runtimes: musllinux x86_64 / aarch64 -> the musl CPythons built here (aarch64 under qemu-user);
    manylinux x86_64 -> a host CPython; manylinux aarch64 -> Debian's arm64 CPythons under qemu-user. The
    Python version must match the tag. A runtime that is missing but buildable is built on first use
    (minutes; cached). See `rewheel runtimes list`.

    Exit codes: 0 every wheel imported; 1 an import or the command failed (the interpreter's own error is
    shown), or with --require-import a wheel could not be imported here; 2 unusable input; 3
    (EXIT_CANNOT_HOST) this machine cannot host a target (e.g. Windows), and nothing failed.
    """
    from pipeline.errors import EXIT_CANNOT_HOST, EXIT_FINDINGS, EXIT_OK
    from pipeline.output import emit_json
    from pipeline.smoke import CANNOT_HOST, FAILED, PASSED, smoke_wheel

    results = [
        smoke_wheel(wheel, target, imports=list(imports) or None, command=test_command, progress=True)
        for wheel in wheels
    ]
    if as_json:
        emit_json({"results": [r.to_json() for r in results]})
    else:
        for r in results:
            where = f" on {r.runtime}" if r.runtime else ""
            click.echo(f"{r.status.upper():12} {r.wheel} [{r.target}]{where}: {r.message}")
    imported = sum(r.status == PASSED for r in results)
    if not as_json:
        click.echo(f"{imported}/{len(results)} imported", err=True)
    if any(r.status == FAILED for r in results):
        return EXIT_FINDINGS
    if require_import and imported < len(results):
        return EXIT_FINDINGS
    if any(r.status == CANNOT_HOST for r in results):
        return EXIT_CANNOT_HOST
    return EXIT_OK
