"""The case rewheel exists for, on the target users deploy today (issue #23's "done when").

A `python:3.1x-alpine` image on arm64 (Alpine 3.20-3.23, musl 1.2.5) needs numpy, pandas, cryptography and bcrypt.
Their musllinux_1_2 aarch64 wheels graft libraries with DT_RELR (packed relocations), which musl loads from 1.2.4:
- on the default target (`musllinux_1_2_aarch64` = every supported Alpine release) `build -r` admits them all,
  publishes a complete wheelhouse, and pip inside the musl 1.2.5 aarch64 CPython (qemu-user) installs the file from
  that index alone; every package imports and does a little real work;
- on the legacy target (`musllinux_1_2_aarch64-musl1.2.3`, Alpine 3.17 / Debian 12's musl) `gaps` refuses the
  DT_RELR wheels with the finding and falls to the next fitting upstream wheel or to the sdist.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from conftest import ensure_runtime, unavailable
from helpers.target_pip import PIP, clean_environment, pip_install_from_index

REQUIREMENTS = "numpy==2.3.5\npandas==2.3.3\ncryptography==46.0.3\nbcrypt==4.3.0\n"
USE = """
import bcrypt, numpy, pandas
from cryptography.fernet import Fernet
key = Fernet.generate_key()
assert Fernet(key).decrypt(Fernet(key).encrypt(b"x")) == b"x"          # Rust + OpenSSL grafted for musl
assert bcrypt.checkpw(b"pw", bcrypt.hashpw(b"pw", bcrypt.gensalt(4)))   # Rust, libgcc_s with DT_RELR
frame = pandas.DataFrame({"a": numpy.arange(4)})
assert int(frame["a"].sum()) == 6 and numpy.linalg.norm(numpy.ones(4)) == 2.0
print("ALL-IMPORTED", numpy.__version__, pandas.__version__)
"""


@pytest.mark.slow
def test_alpine_arm64_wheelhouse_installs_and_imports_on_musl_1_2_5(
    pypi_file, runtime_env, shared_cache: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from pipeline.unpack import unpack

    requirements = tmp_path / "requirements.txt"
    requirements.write_text(REQUIREMENTS)
    index = tmp_path / "index"
    env = {**os.environ, "REWHEEL_CACHE_DIR": str(shared_cache)}
    built = subprocess.run(
        [sys.executable, "-m", "pipeline", "build", "-r", str(requirements), "--target", "musllinux_1_2_aarch64",
         "--python", "3.11", "--publish", str(index), "--wheelhouse", str(tmp_path / "wheelhouse"), "--json"],
        capture_output=True, text=True, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-4000:]
    result = json.loads(built.stdout)
    assert result["ok"] and not result["missing"]
    statuses = {g["name"]: g["status"] for g in result["gaps"]["requirements"]}
    for name in ("numpy", "pandas", "cryptography", "bcrypt"):
        assert statuses[name] == "upstream-wheel", statuses  # no DT_RELR refusal on supported Alpine
    assert all(u["verified"] for u in result["upstream"])

    runtime = ensure_runtime("musl-cpython-3.11-aarch64")
    problem = runtime.child_exec_problem()
    if problem:
        unavailable(f"musl-cpython-3.11-aarch64: {problem}")
    pip = unpack(pypi_file(*PIP), tmp_path / "pip")
    site = tmp_path / "site"
    clean = clean_environment()
    install = pip_install_from_index(Path(runtime.python()), pip, index, requirements, site)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    installed = {canonicalize_name(p.name.split("-")[0]) for p in site.glob("*.dist-info")}
    assert {"numpy", "pandas", "cryptography", "bcrypt", "cffi"} <= installed
    used = subprocess.run(
        [str(runtime.python()), "-s", "-c", USE],
        env={**clean, "PYTHONPATH": str(site)}, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert used.returncode == 0, used.stderr[-3000:]
    assert "ALL-IMPORTED 2.3.5 2.3.3" in used.stdout


@pytest.mark.slow
def test_the_musl_1_2_3_target_refuses_the_relr_wheels_with_the_finding(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(REQUIREMENTS)
    code, out, err = run_cli(
        "gaps",
        "-r",
        str(requirements),
        "--target",
        "musllinux_1_2_aarch64-musl1.2.3",
        "--python",
        "3.11",
        "--json",
    )
    assert code == 0, err
    entries = {e["name"]: e for e in json.loads(out)["requirements"]}
    for name in ("numpy", "pandas", "cryptography", "bcrypt"):
        entry = entries[name]
        rejected = [r for r in entry["rejected"] if r["finding"].startswith("relr-unsupported")]
        assert rejected, entry
        # it falls to the next fitting upstream wheel (bcrypt's musllinux_1_1 build has no DT_RELR) or to the sdist
        if entry["status"] == "upstream-wheel":
            assert entry["file"] not in {r["file"] for r in rejected}, entry
        else:
            assert entry["status"] in ("needs-build", "unavailable"), entry
