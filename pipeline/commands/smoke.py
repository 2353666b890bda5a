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
    "--with",
    "extra_requirements",
    multiple=True,
    metavar="REQ",
    help="An extra requirement to install beside the wheel (repeatable): a line pinned with --hash=sha256:... "
    "is fetched by that hash (as a recipe's [test] requires); otherwise it is resolved for the target with the "
    "wheel's own dependencies and each file taken by the sha256 the index lists.",
)
@click.option(
    "--find-links",
    "find_links",
    type=click.Path(path_type=Path, file_okay=False),
    help="A wheelhouse folder to take dependencies from, beside the package index.",
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
    extra_requirements: tuple[str, ...],
    find_links: Path | None,
    require_import: bool,
    as_json: bool,
) -> int:
    """Install each WHEEL into a throwaway folder on its target's runtime and import its modules there.

    Runtimes: musllinux x86_64 / aarch64 -> the musl CPythons built here (aarch64 under qemu-user);
    manylinux x86_64 -> a host CPython; manylinux aarch64 -> Debian's arm64 CPythons under qemu-user. The
    Python version must match the tag. A runtime that is missing but buildable is built on first use
    (minutes; cached). See `rewheel runtimes list`.

    The wheel's declared dependencies (Requires-Dist whose markers hold on the target; no extras) are
    installed beside it, from --find-links and the package index, pinned by sha256. A module smoke chose
    itself that needs an optional extra the wheel does not declare is reported as skipped; a module given
    with --import, and the --command, are strict.

    Exit codes: 0 every wheel imported; 1 an import or the command failed (the interpreter's own error is
    shown), or with --require-import a wheel could not be imported here; 2 unusable input; 3
    (EXIT_CANNOT_HOST) this machine cannot host a target (e.g. Windows), and nothing failed.
    """
    from pipeline.errors import EXIT_CANNOT_HOST, EXIT_FINDINGS, EXIT_OK, RewheelError
    from pipeline.output import emit_json
    from pipeline.smoke import CANNOT_HOST, FAILED, PASSED, smoke_wheel

    if find_links is not None and not find_links.is_dir():
        raise RewheelError(f"--find-links {find_links}: no such folder")
    results = [
        smoke_wheel(
            wheel,
            target,
            imports=list(imports) or None,
            command=test_command,
            requires=list(extra_requirements) or None,
            find_links=find_links,
        )
        for wheel in wheels
    ]
    if as_json:
        emit_json({"results": [r.to_json() for r in results]})
    else:
        for r in results:
            where = f" on {r.runtime}" if r.runtime else ""
            click.echo(f"{r.status.upper():12} {r.wheel} [{r.target}]{where}: {r.message}")
            for skipped in r.skipped:
                click.echo(f"{'':12}   skipped {skipped['module']}: {skipped['reason']}")
    # A wheel counts as imported when every import it tried succeeded (its test command is counted apart).
    imported = sum(
        r.runtime is not None and not r.import_failures and r.status != CANNOT_HOST for r in results
    )
    commands = [r.command for r in results if r.command.ran]
    if not as_json:
        line = f"{imported}/{len(results)} imported"
        if commands:
            passed = sum(bool(c.ok) for c in commands)
            line += f"; test command passed {passed}/{len(commands)}"
        click.echo(line, err=True)
    everything_imported = sum(r.status == PASSED for r in results)
    if any(r.status == FAILED for r in results):
        return EXIT_FINDINGS
    if require_import and everything_imported < len(results):
        return EXIT_FINDINGS
    if any(r.status == CANNOT_HOST for r in results):
        return EXIT_CANNOT_HOST
    return EXIT_OK
