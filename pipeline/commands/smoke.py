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
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
def command(
    wheels: tuple[Path, ...],
    target: str | None,
    imports: tuple[str, ...],
    test_command: str | None,
    as_json: bool,
) -> int:
    """Install each WHEEL into a throwaway folder on its target's runtime and import its modules there.

    Runtimes: musllinux x86_64 -> the musl CPython built here; manylinux x86_64 -> a host CPython;
    manylinux aarch64 -> Debian's arm64 CPython under qemu-user; musllinux aarch64 -> only once the
    experimental musl-cpython-3.11-aarch64 was built. The Python version must match the tag. A runtime
    that is missing but buildable is built on first use (minutes; cached). See `rewheel runtimes list`.

    Exit codes: 0 every wheel imported; 1 an import or the command failed (the interpreter's own error is
    shown); 2 unusable input; 3 (EXIT_CANNOT_HOST) this machine cannot host a target (e.g. Windows), and
    nothing failed.
    """
    from pipeline.errors import EXIT_CANNOT_HOST, EXIT_FINDINGS, EXIT_OK
    from pipeline.output import emit_json
    from pipeline.smoke import CANNOT_HOST, FAILED, smoke_wheel

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
    if any(r.status == FAILED for r in results):
        return EXIT_FINDINGS
    if any(r.status == CANNOT_HOST for r in results):
        return EXIT_CANNOT_HOST
    return EXIT_OK
