"""pip run by a target runtime's own interpreter, installing from one index only (what a user's image does)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

# pip for the target's interpreter, run from its unpacked wheel (the runtimes are built without ensurepip);
# 24.2 is the first pip whose glibc probe is guarded, so it also runs on a statically linked CPython.
PIP = (
    "pip",
    "24.2",
    "pip-24.2-py3-none-any.whl",
    "2cd581cf58ab7fcfca4ce8efa6dcacd0de5bf8d0a3eb9ec927e07405f4d9e2a2",
)


def clean_environment() -> dict[str, str]:
    """os.environ without PIP_* and PYTHON*: this machine's own index settings and paths cannot leak in."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}


def pip_install_from_index(
    interpreter: Path,
    pip_dir: Path,
    index: Path,
    requirements: Path,
    site: Path,
    *,
    report: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """`interpreter -m pip install -r requirements --target site` with the static index as the only index, no
    cache, no config (--isolated), binary wheels only; `report`: pip's JSON installation report."""
    command = [
        str(interpreter), "-m", "pip", "install", "--isolated", "--no-cache-dir", "--disable-pip-version-check",
        "--only-binary", ":all:", "--index-url", index.resolve().joinpath("simple").as_uri(),
        "--target", str(site), "-r", str(requirements),
    ]  # fmt: skip
    if report is not None:
        command += ["--report", str(report)]
    return subprocess.run(
        command,
        env={**clean_environment(), "PYTHONPATH": str(pip_dir)},
        capture_output=True,
        text=True,
        timeout=1800,
    )
