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


@nox.session(name="tests-fast")
def tests_fast(session: nox.Session) -> None:
    """The fast lane while editing: every test not marked slow (no builds, no large downloads). CI runs
    `tests`, all of them."""
    install_project(session, "test")
    session.run("pytest", "-m", "not slow", *session.posargs)


@nox.session(python=False)
def rehearse(session: nox.Session) -> None:
    """Rehearse CI on a brand-new machine: purge every Debian package the project installs, empty podman's
    storage, use an empty cache, clone HEAD afresh and run `CI=true bash .ci/run` there (as root; it changes
    this machine). `nox -s rehearse -- --dry-run` prints what it would remove (scripts/rehearse-fresh-machine)."""
    session.run("python3", "scripts/rehearse-fresh-machine", *session.posargs, external=True)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (style and bugs) and mypy (types) over the package, tests, benchmarks and this file."""
    install_project(session, "lint")
    session.run("ruff", "check", "pipeline", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "pipeline", "tests", "benchmarks", "noxfile.py")
    session.run("mypy", "pipeline")


def _build_and_publish(session: nox.Session, targets: list[str], *extra: str) -> None:
    """`rewheel build` for these targets over every recipe that lists them, then publish the run's wheels to
    the static index in index/ (posargs go to `rewheel build`, e.g. recipe paths or --no-smoke)."""
    target_args = [arg for target in targets for arg in ("--target", target)]
    session.run("rewheel", "build", *target_args, *extra, "--publish", "index", *session.posargs)


@nox.session(name="build-musl")
def build_musl(session: nox.Session) -> None:
    """Build musllinux_1_2 x86_64 + aarch64 wheels (zig when no container engine works) and publish to index/."""
    install_project(session, "zig", "publish")
    _build_and_publish(session, ["musllinux_1_2_x86_64", "musllinux_1_2_aarch64"])


@nox.session(name="build-arm64")
def build_arm64(session: nox.Session) -> None:
    """Build every aarch64 target's wheels (manylinux and musllinux) and publish to index/."""
    install_project(session, "zig", "publish")
    _build_and_publish(session, ["*_aarch64"])


@nox.session(name="build-armv7")
def build_armv7(session: nox.Session) -> None:
    """Build every armv7l target's wheels (32-bit Raspberry Pi: manylinux armhf and musllinux armv7) and publish
    to index/; imports run under qemu-arm (the armv7 musl CPython, Debian's armhf python3.11)."""
    install_project(session, "zig", "publish")
    _build_and_publish(session, ["*_armv7l"])


@nox.session(name="build-windows")
def build_windows(session: nox.Session) -> None:
    """Build the Windows targets' wheels and publish them to index/ (Nano Server wheels to its channel,
    index/nanoserver/simple/). On Windows: cibuildwheel. Elsewhere: the zig backend cross-builds them, delvewheel
    repairs, and smoke imports them under wine (win_arm64: verified only)."""
    import sys

    if sys.platform == "win32":
        install_project(session, "publish")
        _build_and_publish(session, ["win_*"], "--backend", "cibuildwheel")
        return
    install_project(session, "zig", "publish")
    _build_and_publish(session, ["win_*"], "--backend", "zig")


@nox.session(name="build-cibuildwheel")
def build_cibuildwheel(session: nox.Session) -> None:
    """Build manylinux x86_64 wheels with the real cibuildwheel (podman + rewheel's local image, made once and
    cached; docker with the pinned upstream image where a docker daemon works). Wheels land in wheelhouse/."""
    install_project(session)
    session.run(
        "rewheel", "build", "--target", "manylinux_2_*_x86_64", "--backend", "cibuildwheel", *session.posargs
    )


@nox.session
def workflows(session: nox.Session) -> None:
    """Check .github/workflows (actionlint, using shellcheck if on PATH; the workflow schema, offline), then print the
    release build matrix the recipes produce (`rewheel ci-matrix`; posargs go to it, e.g. --arm64 qemu)."""
    import glob

    install_project(session, "test")
    files = sorted(glob.glob(".github/workflows/*.yml"))
    session.run("actionlint", *files)
    session.run("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *files)
    session.run("rewheel", "ci-matrix", *session.posargs)


@nox.session
def verify(session: nox.Session) -> None:
    """Run the symbol checker over a wheelhouse: every wheel under wheelhouse/ (or the folders and wheels
    given as posargs) against the target its own tags name (`--target auto`); fails on any error finding.
    Posargs may add `--target NAME` (e.g. win_amd64-nanoserver) to check against that target instead."""
    install_project(session)
    args = list(session.posargs) or ["wheelhouse"]
    if "--target" not in args and "-t" not in args:
        args += ["--target", "auto"]
    session.run("rewheel", "verify", *args)


@nox.session
def publish(session: nox.Session) -> None:
    """Publish wheelhouse/ (verified) to a static index folder: `nox -s publish -- [DEST [rewheel options]]`.

    DEST defaults to index/; an http(s) URL uploads with twine instead (credentials from the environment).
    """
    install_project(session, "publish")
    destination, *options = session.posargs or ["index"]
    session.run("rewheel", "publish", "wheelhouse", "--to", destination, *options)


@nox.session(name="patch-pip")
def patch_pip(session: nox.Session) -> None:
    """Patched pip for static (musl) CPythons: `rewheel build recipes/pip.toml` fetches each pinned pip wheel,
    applies patches/pip/ strictly, re-packs it reproducibly under two names, verifies and smokes it.
    wheelhouse/ gets pip-X-1rewheel-py3-none-any.whl (for the index; pip prefers it), wheelhouse/ensurepip/
    the upstream-named copies for `rewheel ensurepip PYTHON --wheel ...`. Posargs go to `rewheel build`."""
    install_project(session)
    session.run("rewheel", "build", "recipes/pip.toml", *session.posargs)


@nox.session(name="build-zig")
def build_zig(session: nox.Session) -> None:
    """Cross-build the C recipes with the zig backend, no container: `rewheel build --backend zig` over
    markupsafe and cffi (libffi built for each target first) for musllinux x86_64/aarch64 and manylinux
    aarch64, each repaired, verified and smoked where this machine can host the target. Posargs replace the
    recipe list and may add options (e.g. `-- recipes/cffi.toml --target musllinux_1_2_aarch64`)."""
    install_project(session, "zig")
    args = list(session.posargs) or ["recipes/markupsafe.toml", "recipes/cffi.toml"]
    session.run("rewheel", "build", *args, "--backend", "zig")


@nox.session
def runtimes(session: nox.Session) -> None:
    """Build the target runtimes (musl CPythons 3.11 and 3.13 for x86_64 and, cross-built with Zig, aarch64,
    and 3.11 for armv7l; Debian's arm64 and armhf CPythons for qemu-user) into the cache, reusing what exists,
    then list them. Posargs:
    runtime names."""
    install_project(session, "zig")
    session.run("rewheel", "runtimes", "build", *session.posargs)
    session.run("rewheel", "runtimes", "list")


@nox.session(name="recipe-pillow")
def recipe_pillow(session: nox.Session) -> None:
    """Check the Pillow recipe on any host (building it needs Windows: `nox -s build-windows`): pins and patch
    file, the CIBW_* options of its four Windows jobs, then tests/recipes/test_pillow_recipe.py (upstream's wheel fails
    verify on Nano Server exactly where the patch acts; the patch applies strictly; cibuildwheel parses the
    options). Posargs go to pytest."""
    install_project(session, "test")
    session.run("rewheel", "recipes", "check", "recipes/pillow.toml")
    session.run("rewheel", "build", "recipes/pillow.toml", "--print-cibuildwheel-config")
    session.run("pytest", "tests/recipes/test_pillow_recipe.py", *session.posargs)


@nox.session(name="pillow-linux")
def pillow_linux(session: nox.Session) -> None:
    """Pillow 10.4.0 for Linux with the zig backend (no container): zlib (build kind "configure"), libjpeg-turbo
    ("cmake") and lcms2 ("autotools") cross-built for the target from pinned Debian orig tarballs, other codecs
    disabled, host /usr never searched; repaired, verified and round-tripped (JPEG + PNG) on the target's
    runtime (tests/recipes/test_pillow_linux.py; musllinux x86_64 always, manylinux aarch64 under qemu in CI, or when
    its native libraries are cached or REWHEEL_PILLOW_AARCH64=1). Posargs go to pytest."""
    install_project(session, "test", "zig")
    session.run("pytest", "tests/recipes/test_pillow_linux.py", *session.posargs)
