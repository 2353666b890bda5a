from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pipeline.errors import EXIT_FINDINGS, RewheelError


@click.command(name="ensurepip")
@click.argument("python", required=False, type=click.Path(path_type=Path))
@click.option("--check", "check_only", is_flag=True, help="Only report whether its bundled pip is affected.")
@click.option(
    "--wheel",
    type=click.Path(path_type=Path),
    help="The patched pip wheel to install (upstream file name); default: make it from the pip recipe.",
)
@click.option("--restore", is_flag=True, help="Put the original wheel back from the .rewheel-orig backup.")
@click.option(
    "--make-wheels",
    is_flag=True,
    help="Make the patched wheels (index and ensurepip names) for the recipe's versions; no PYTHON.",
)
@click.option("--version", "versions", multiple=True, help="With --make-wheels: only these pip versions.")
@click.option(
    "--recipe",
    type=click.Path(path_type=Path),
    help="The pip recipe (default: recipes/pip.toml of the project).",
)
@click.option(
    "--out", type=click.Path(path_type=Path), help="Wheelhouse for --make-wheels (default: wheelhouse/)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(
    python: Path | None,
    check_only: bool,
    wheel: Path | None,
    restore: bool,
    make_wheels: bool,
    versions: tuple[str, ...],
    recipe: Path | None,
    out: Path | None,
    as_json: bool,
) -> None:
    """Make a Python's ensurepip install a pip that works on static (musl) interpreters.

    PYTHON is an installation prefix, its stdlib folder or its interpreter; it is read, never run.
    \b
      rewheel ensurepip PYTHON --check            is its bundled pip affected? (exit 1 when it is)
      rewheel ensurepip PYTHON --wheel PIP.whl    install that patched wheel (backup kept)
      rewheel ensurepip PYTHON                    make the patched wheel from the pip recipe, install it
      rewheel ensurepip PYTHON --restore          put the original back
      rewheel ensurepip --make-wheels [--out DIR] make every patched pip of the recipe (both names)
    """
    from pipeline.log import log
    from pipeline.paths import default_wheelhouse, project_root

    log.configure(enabled=not as_json)  # --json: stdout carries the JSON and stderr stays quiet
    recipe_path = recipe or project_root() / "recipes" / "pip.toml"
    if make_wheels:
        if python is not None or check_only or wheel or restore:
            raise RewheelError("--make-wheels takes no PYTHON, --check, --wheel or --restore")
        _make_wheels(recipe_path, out or default_wheelhouse(), list(versions), as_json)
        return
    if python is None:
        raise RewheelError("name a PYTHON (prefix or interpreter), or use --make-wheels")
    if sum([check_only, wheel is not None, restore]) > 1:
        raise RewheelError("use only one of --check, --wheel and --restore")
    if versions or out:
        raise RewheelError("--version and --out go with --make-wheels")

    from pipeline import ensurepip
    from pipeline.output import emit_json

    if check_only:
        report = ensurepip.check_python(python)
        if as_json:
            emit_json(report.to_json())
        else:
            state = "AFFECTED" if report.affected else "not affected"
            click.echo(f"{report.wheel} (pip {report.version}, {report.origin}): {state}: {report.reason}")
        if report.affected:
            raise SystemExit(EXIT_FINDINGS)
        return
    if restore:
        restored = ensurepip.restore_pip_wheel(python)
        if as_json:
            emit_json(restored.to_json())
        else:
            click.echo(f"restored {restored.wheel} (affected: {restored.affected})")
        return
    if wheel is None:
        current = ensurepip.check_python(python)
        if not current.affected:
            message = f"{current.wheel}: not affected ({current.reason}); nothing to do"
            if as_json:
                emit_json({"changed": False, "after": current.to_json(), "message": message})
            else:
                click.echo(message)
            return
        import tempfile

        with tempfile.TemporaryDirectory(prefix="rewheel-ensurepip-") as scratch:
            made = ensurepip.make_patched_wheels(recipe_path, Path(scratch), [current.version])
            outcome = ensurepip.install_pip_wheel(python, made[0].ensurepip_wheel)
    else:
        outcome = ensurepip.install_pip_wheel(python, wheel)
    if as_json:
        emit_json(outcome.to_json())
    elif outcome.changed:
        click.echo(f"installed {outcome.target} (original kept as {outcome.backup})")
    else:
        click.echo(f"{outcome.target} already is this wheel; nothing changed")


def _make_wheels(recipe_path: Path, out: Path, versions: list[str], as_json: bool) -> None:
    """Make, then check every wheel: RECORD exact, the crash gone, and rewheel verify clean."""
    from pipeline.ensurepip import make_patched_wheels, pip_wheel_affected
    from pipeline.output import emit_json
    from pipeline.verify import verify_wheel
    from pipeline.wheelfile import record_problems

    made = make_patched_wheels(recipe_path, out, versions or None)
    results: list[dict[str, Any]] = []
    failed = False
    for item in made:
        for path in (item.index_wheel, item.ensurepip_wheel):
            problems: list[str] = record_problems(path)
            affected, reason = pip_wheel_affected(path)
            if affected:
                problems.append(reason)
            entry: dict[str, Any] = {"version": item.version, "wheel": str(path), "problems": problems}
            report = verify_wheel(path, "any")
            entry["verify"] = report.to_json()
            if not report.ok:
                problems.append("rewheel verify reported errors")
            failed = failed or bool(problems)
            results.append(entry)
    if as_json:
        emit_json({"ok": not failed, "wheels": results})
    else:
        for entry in results:
            found = entry["problems"]
            status = "ok" if not found else "FAILED: " + "; ".join(found)
            click.echo(f"{entry['wheel']}: {status}")
    if failed:
        raise SystemExit(EXIT_FINDINGS)
