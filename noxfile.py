"""nox sessions: thin wrappers over the rewheel CLI (and the test/lint tools).

Virtualenvs are reused between runs (so a second `nox -s tests` installs nothing); pass `--no-reuse-existing-virtualenvs`
or delete .nox/ to start clean. Sessions run with the Python that runs nox.
"""

from __future__ import annotations

import nox

nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests"]
nox.options.error_on_missing_interpreters = True


def install_project(session: nox.Session, *extras: str) -> None:
    spec = f".[{','.join(extras)}]" if extras else "."
    session.install("-e", spec)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (installs what the tests need; in CI a missing tool fails rather than skips)."""
    install_project(session, "test")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (style and bugs) and mypy (types) over the package, tests, benchmarks and this file."""
    install_project(session, "lint")
    session.run("ruff", "check", "pipeline", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "pipeline", "tests", "benchmarks", "noxfile.py")
    session.run("mypy", "pipeline")
