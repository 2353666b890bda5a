"""The patched pip, end to end: the recipe, both wheel names, `rewheel ensurepip`, and the venv crash
reproduced and fixed.

The crash needs an interpreter that cannot dlopen() and has no CS_GNU_LIBC_VERSION (a static musl
CPython). A faithful stand-in runs in any CPython: an overlay prefix (the interpreter copied, its stdlib
linked file by file, ensurepip copied so it can be changed) whose stdlib holds a sitecustomize.py making
ctypes.CDLL(None) raise OSError("Dynamic loading not supported") and os.confstr("CS_GNU_LIBC_VERSION")
raise EINVAL. It lives inside the prefix because venv drops PYTHONPATH for its ensurepip child, and in the
stdlib folder (not site-packages) because a venv does not see the base site-packages. The real static
musl CPython (helper C's runtime) is used too when it is built.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from conftest import MUSL_STATIC, REPO, ensure_runtime, unavailable
from pipeline.ensurepip import check_python, pip_wheel_affected

PIP_WHEELS = {
    "22.3.1": "908c78e6bc29b676ede1c4d57981d490cb892eb45cd8c214ab6298125119e077",
    "23.0.1": "236bcb61156d76c4b8a05821b988c7b8c35bf0da28a4b614e8d6ab5212c25c6f",
    "23.2.1": "7ccf472345f20d35bdc9d1841ff5f313260c2c33fe417f48c30ac46cccabf5be",
    "24.0": "ba0d021a166865d2265246961bec0152ff124de910c5cc39f1156ce3fa7c69dc",
    "24.1.2": "7cd207eed4c60b0f411b444cd1464198fe186671c323b6cd6d433ed80fc9d247",
}
STAND_IN = '''\
"""rewheel test stand-in for a static musl CPython: no dlopen(), no glibc confstr."""
import ctypes
import errno
import os

_real_init = ctypes.CDLL.__init__


def _no_dlopen(self, name, *args, **kwargs):
    if name is None:
        raise OSError("Dynamic loading not supported")
    _real_init(self, name, *args, **kwargs)


ctypes.CDLL.__init__ = _no_dlopen
_real_confstr = os.confstr


def _confstr(name):
    if name in ("CS_GNU_LIBC_VERSION", os.confstr_names.get("CS_GNU_LIBC_VERSION")):
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
    return _real_confstr(name)


os.confstr = _confstr
'''


@pytest.fixture(scope="module")
def patched_wheels(tmp_path_factory: pytest.TempPathFactory, shared_cache: Path) -> Path:
    """`rewheel ensurepip --make-wheels` for every version of recipes/pip.toml (fetch, patch, re-pack)."""
    out = tmp_path_factory.mktemp("wheelhouse")
    env = {**os.environ, "REWHEEL_CACHE_DIR": str(shared_cache)}
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "ensurepip", "--make-wheels", "--out", str(out), "--json"],
        capture_output=True, text=True, env=env, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and len(report["wheels"]) == 2 * len(PIP_WHEELS)
    return out


def _overlay(base_stdlib: Path, interpreter: Path, dest: Path, *, stand_in: bool) -> Path:
    """A prefix that runs `interpreter` with the stdlib at `base_stdlib`, cheaply (a few MB): everything
    linked except ensurepip (copied: it gets modified) and site-packages (empty)."""
    stdlib = dest / "lib" / base_stdlib.name
    stdlib.mkdir(parents=True)
    for entry in base_stdlib.iterdir():
        if entry.name not in ("ensurepip", "site-packages", "sitecustomize.py"):
            os.symlink(entry, stdlib / entry.name)
    shutil.copytree(
        base_stdlib / "ensurepip", stdlib / "ensurepip", ignore=shutil.ignore_patterns("__pycache__")
    )
    (stdlib / "site-packages").mkdir()
    # A shared-libpython build may find its library via $ORIGIN/../lib.
    for library in base_stdlib.parent.glob("libpython3*"):
        os.symlink(library, dest / "lib" / library.name)
    (dest / "bin").mkdir()
    executable = dest / "bin" / base_stdlib.name  # python3.11
    # A copy, not a link: CPython finds its prefix from the real path of its executable.
    shutil.copy2(interpreter, executable)
    if stand_in:
        (stdlib / "sitecustomize.py").write_text(STAND_IN)
    return executable


def _affected_host_python() -> tuple[Path, Path]:
    """A CPython on this machine whose ensurepip bundles an affected pip the recipe covers."""
    candidates = [(Path(sysconfig.get_paths()["stdlib"]), Path(sys.executable).resolve())]
    for version in ("3.11.7", "3.12.1", "3.10.13", "3.11.2"):
        prefix = Path.home() / ".pyenv" / "versions" / version
        short = version.rsplit(".", 1)[0]
        candidates.append((prefix / "lib" / f"python{short}", prefix / "bin" / f"python{short}"))
    for stdlib, interpreter in candidates:
        if not (stdlib / "ensurepip").is_dir() or not interpreter.is_file():
            continue
        found = check_python(stdlib)
        if found.origin == "bundled" and found.affected and found.version in PIP_WHEELS:
            return stdlib, interpreter
    unavailable("no CPython here bundles an affected pip (22.3.1-24.1.2) in ensurepip/_bundled")
    raise AssertionError("unreachable")


def _rewheel(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, cwd=REPO)


def test_recipe_checks_and_plans_one_job_per_version(run_cli) -> None:
    code, out, err = run_cli("recipes", "check", str(REPO / "recipes" / "pip.toml"))
    assert code == 0, err
    code, out, err = run_cli("plan", str(REPO / "recipes" / "pip.toml"), "--json")
    jobs = json.loads(out)["jobs"]
    assert sorted(j["version"] for j in jobs) == sorted(PIP_WHEELS)
    assert {(j["kind"], j["target"], j["python"]) for j in jobs} == {("wheel", "any", "any")}


def test_every_version_is_fixed_and_named_twice(patched_wheels: Path, pypi_file) -> None:
    for version, sha256 in PIP_WHEELS.items():
        upstream = pypi_file("pip", version, f"pip-{version}-py3-none-any.whl", sha256)
        assert pip_wheel_affected(upstream)[0], f"upstream pip {version} should be affected"
        index_wheel = patched_wheels / f"pip-{version}-1rewheel-py3-none-any.whl"
        ensurepip_wheel = patched_wheels / "ensurepip" / f"pip-{version}-py3-none-any.whl"
        for wheel in (index_wheel, ensurepip_wheel):
            affected, reason = pip_wheel_affected(wheel)
            assert not affected, reason
        # Same content under both names: only WHEEL (Build line) and RECORD (WHEEL's hash) differ.
        with zipfile.ZipFile(index_wheel) as a, zipfile.ZipFile(ensurepip_wheel) as b:
            differing = {n for n in a.namelist() if a.read(n) != b.read(n)}
        assert differing == {f"pip-{version}.dist-info/WHEEL", f"pip-{version}.dist-info/RECORD"}


def test_stale_patch_fails_loudly_from_the_cli(tmp_path: Path) -> None:
    """A patch that no longer matches (as it would on pip >= 24.2) stops the run with one line, exit 2."""
    recipe_text = (REPO / "recipes" / "pip.toml").read_text()
    patch_text = (REPO / "patches" / "pip" / "0001-guard-ctypes-cdll-none.patch").read_text()
    stale = patch_text.replace(
        " # which libc our process is actually using.\n", " # which libc our process is really using.\n"
    )
    assert stale != patch_text
    (tmp_path / "patches" / "pip").mkdir(parents=True)
    (tmp_path / "patches" / "pip" / "0001-guard-ctypes-cdll-none.patch").write_text(stale)
    import hashlib

    old_pin = hashlib.sha256(patch_text.encode()).hexdigest()
    new_pin = hashlib.sha256(stale.encode()).hexdigest()
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "pip.toml").write_text(recipe_text.replace(old_pin, new_pin))
    result = _rewheel(
        "ensurepip", "--make-wheels", "--version", "23.2.1",
        "--recipe", str(tmp_path / "recipes" / "pip.toml"), "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        "rewheel: error: 0001-guard-ctypes-cdll-none.patch: hunk 1 (@@ -40,7 +40,13 @@) "
        "does not apply to pip/_internal/utils/glibc.py"
    )
    assert "Traceback" not in result.stderr
    assert not list((tmp_path / "out").rglob("*.whl")), "no wheel is written when a patch fails"


@pytest.mark.slow
def test_stand_in_venv_crashes_then_works_after_rewheel_ensurepip(
    tmp_path: Path, patched_wheels: Path
) -> None:
    stdlib, interpreter = _affected_host_python()
    python = _overlay(stdlib, interpreter, tmp_path / "prefix", stand_in=True)
    # The stand-in really removes dlopen(None) and the glibc confstr in that interpreter.
    probe = subprocess.run(
        [str(python), "-c", "import ctypes, os\ntry:\n ctypes.CDLL(None)\nexcept OSError as e: print(e)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert probe.stdout.strip() == "Dynamic loading not supported"

    # 1. Upstream bundled pip: venv fails, and the reason is pip's unguarded CDLL(None).
    broken = subprocess.run([str(python), "-m", "venv", str(tmp_path / "v1")], capture_output=True, text=True)
    assert broken.returncode != 0
    assert "ensurepip" in broken.stdout + broken.stderr
    subprocess.run([str(python), "-m", "venv", "--without-pip", str(tmp_path / "v2")], check=True)
    inside = subprocess.run(
        [str(tmp_path / "v2" / "bin" / "python"), "-Im", "ensurepip", "--upgrade", "--default-pip"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert inside.returncode != 0
    assert "OSError: Dynamic loading not supported" in inside.stderr
    assert "pip/_internal/utils/glibc.py" in inside.stderr

    check = _rewheel("ensurepip", str(python), "--check", "--json")
    assert check.returncode == 1, check.stderr
    before = json.loads(check.stdout)
    assert before["affected"] is True and before["origin"] == "bundled"
    version = before["pip_version"]

    # 2. Refusals: one line, exit 2, nothing changed.
    wrong_version = next(v for v in PIP_WHEELS if v != version)
    for wheel, words in [
        (patched_wheels / f"pip-{version}-1rewheel-py3-none-any.whl", "opens pip-"),
        (patched_wheels / "ensurepip" / f"pip-{wrong_version}-py3-none-any.whl", f"installs pip {version}"),
        (Path(before["pip_wheel"]), "still crashes on static interpreters"),
    ]:
        refused = _rewheel("ensurepip", str(python), "--wheel", str(wheel))
        assert refused.returncode == 2 and words in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
    assert _rewheel("ensurepip", str(python), "--check").returncode == 1

    # 3. Install the patched wheel under the exact upstream name; the original is kept.
    done = _rewheel(
        "ensurepip",
        str(python),
        "--wheel",
        str(patched_wheels / "ensurepip" / f"pip-{version}-py3-none-any.whl"),
    )
    assert done.returncode == 0, done.stderr
    bundled = Path(before["pip_wheel"])
    assert (bundled.parent / (bundled.name + ".rewheel-orig")).is_file()
    after = json.loads(_rewheel("ensurepip", str(python), "--check", "--json").stdout)
    assert after["affected"] is False and after["backup"]

    # 4. The venv now works, and its pip runs an install (which builds the User-Agent, the crashing path).
    subprocess.run([str(python), "-m", "venv", str(tmp_path / "v3")], check=True, capture_output=True)
    venv_python = tmp_path / "v3" / "bin" / "python"
    shown = subprocess.run(
        [str(venv_python), "-m", "pip", "--version"], capture_output=True, text=True, check=True
    )
    assert shown.stdout.startswith(f"pip {version} ")
    install = subprocess.run(
        [str(venv_python), "-m", "pip", "install", "--no-index", "--find-links", str(patched_wheels / "ensurepip"),
         "--no-cache-dir", f"pip=={wrong_version}"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr

    # 5. Restore puts the upstream file back (and it is affected again).
    restored = _rewheel("ensurepip", str(python), "--restore")
    assert restored.returncode == 0, restored.stderr
    assert _rewheel("ensurepip", str(python), "--check").returncode == 1


@pytest.mark.slow
def test_real_static_musl_cpython(tmp_path: Path, patched_wheels: Path) -> None:
    """The real thing, on the static musl CPython (python-build-standalone's flavour, built here and cached):
    venv fails with the bundled pip, works with the patched one."""
    runtime = ensure_runtime(MUSL_STATIC)
    interpreter = Path(runtime.python())  # type: ignore[attr-defined]
    found = check_python(interpreter)
    python = _overlay(found.python.stdlib, interpreter, tmp_path / "prefix", stand_in=False)
    probe = subprocess.run(
        [str(python), "-c", "import ctypes\ntry:\n ctypes.CDLL(None)\nexcept OSError as e: print(e)"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert "Dynamic loading not supported" in probe.stdout, probe.stdout + probe.stderr
    broken = subprocess.run([str(python), "-m", "venv", str(tmp_path / "v1")], capture_output=True, text=True)
    assert broken.returncode != 0, "the static CPython with upstream pip should fail to make a venv"
    subprocess.run([str(python), "-m", "venv", "--without-pip", str(tmp_path / "bare")], check=True)
    inside = subprocess.run(
        [str(tmp_path / "bare" / "bin" / "python"), "-Im", "ensurepip", "--upgrade", "--default-pip"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert "OSError: Dynamic loading not supported" in inside.stderr, inside.stderr
    assert "pip/_internal/utils/glibc.py" in inside.stderr
    wheel = patched_wheels / "ensurepip" / f"pip-{found.version}-py3-none-any.whl"
    done = _rewheel("ensurepip", str(python), "--wheel", str(wheel))
    assert done.returncode == 0, done.stderr
    fixed = subprocess.run([str(python), "-m", "venv", str(tmp_path / "v2")], capture_output=True, text=True)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    shown = subprocess.run(
        [str(tmp_path / "v2" / "bin" / "python"), "-m", "pip", "--version"], capture_output=True, text=True
    )
    assert shown.stdout.startswith(f"pip {found.version} "), shown.stdout + shown.stderr


def _synthetic_python(root: Path, version: str, wheel_pkg_dir: Path | None) -> Path:
    """A stdlib folder with a real CPython's ensurepip and a _sysconfigdata naming WHEEL_PKG_DIR."""
    source = Path.home() / ".pyenv" / "versions" / version
    short = version.rsplit(".", 1)[0]
    real = source / "lib" / f"python{short}" / "ensurepip"
    if not real.is_dir():
        unavailable(f"CPython {version} under ~/.pyenv/versions (its ensurepip is what this test copies)")
    stdlib = root / "lib" / f"python{short}"
    shutil.copytree(real, stdlib / "ensurepip", ignore=shutil.ignore_patterns("__pycache__"))
    value = repr(str(wheel_pkg_dir)) if wheel_pkg_dir else "''"
    (stdlib / "_sysconfigdata__linux_x86_64-linux-gnu.py").write_text(
        f"build_time_vars = {{'HOST_GNU_TYPE': 'x86_64-pc-linux-gnu', 'WHEEL_PKG_DIR': {value}}}\n"
    )
    return stdlib


def test_wheel_pkg_dir_rules_follow_each_ensurepip(tmp_path: Path, patched_wheels: Path, pypi_file) -> None:
    """3.11 uses WHEEL_PKG_DIR only when setuptools and pip are both there; 3.13 takes any pip-*.whl there.
    `rewheel ensurepip` replaces the file ensurepip would really use."""
    system_wheels = tmp_path / "python-wheels"
    system_wheels.mkdir()
    upstream = pypi_file("pip", "23.2.1", "pip-23.2.1-py3-none-any.whl", PIP_WHEELS["23.2.1"])
    shutil.copy(upstream, system_wheels / upstream.name)
    stdlib = _synthetic_python(tmp_path / "py311", "3.11.7", system_wheels)
    assert check_python(stdlib).origin == "bundled"  # pip alone is not enough for 3.11's ensurepip
    setuptools = stdlib / "ensurepip" / "_bundled" / "setuptools-65.5.0-py3-none-any.whl"
    shutil.copy(setuptools, system_wheels / setuptools.name)
    found = check_python(stdlib)
    assert (found.origin, found.wheel, found.affected) == (
        "WHEEL_PKG_DIR",
        system_wheels / upstream.name,
        True,
    )
    done = _rewheel("ensurepip", str(stdlib), "--wheel", str(patched_wheels / "ensurepip" / upstream.name))
    assert done.returncode == 0, done.stderr
    assert not check_python(stdlib).affected
    assert (system_wheels / (upstream.name + ".rewheel-orig")).read_bytes() == upstream.read_bytes()
    assert sorted(p.name for p in system_wheels.glob("*.whl")) == [upstream.name, setuptools.name]

    only_pip = tmp_path / "only-pip"
    only_pip.mkdir()
    shutil.copy(upstream, only_pip / upstream.name)
    stdlib313 = _synthetic_python(tmp_path / "py313", "3.13.0", only_pip)
    found = check_python(stdlib313)
    assert (found.origin, found.version, found.affected) == ("WHEEL_PKG_DIR", "23.2.1", True)
    stdlib313_plain = _synthetic_python(tmp_path / "py313-plain", "3.13.0", None)
    found = check_python(stdlib313_plain)
    assert (found.origin, found.version, found.affected) == ("bundled", "24.2", False)


def test_ensurepip_without_wheel_makes_it_from_the_recipe(tmp_path: Path, shared_cache: Path) -> None:
    stdlib, interpreter = _affected_host_python()
    python = _overlay(stdlib, interpreter, tmp_path / "prefix", stand_in=False)
    env = {**os.environ, "REWHEEL_CACHE_DIR": str(shared_cache)}
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "ensurepip", str(tmp_path / "prefix"), "--json"],
        capture_output=True, text=True, cwd=REPO, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["changed"] is True and outcome["after"]["affected"] is False
    again = _rewheel("ensurepip", str(python))
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_bad_pythons_are_refused_in_one_line(tmp_path: Path) -> None:
    for args, words in [
        ((str(tmp_path / "missing"), "--check"), "no such Python prefix"),
        ((str(tmp_path), "--check"), "no ensurepip found"),
        (("--check",), "name a PYTHON"),
    ]:
        result = _rewheel("ensurepip", *args)
        assert result.returncode == 2 and words in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_patched_pip_installs_from_the_private_index_and_reports_itself(
    patched_wheels: Path, tmp_path: Path
) -> None:
    """The index name at work: published to a rewheel static index beside nothing else, the build-tagged wheel
    is what `pip install pip==X` takes; the installed pip reports its version and carries the guard."""
    import functools
    import http.server
    import threading

    from pipeline.ensurepip import pip_wheel_affected
    from pipeline.index import publish

    version = "23.2.1"
    tagged = patched_wheels / f"pip-{version}-1rewheel-py3-none-any.whl"
    index = tmp_path / "index"
    publish([tagged], str(index), target="any")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(index))
    handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        venv = tmp_path / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
        python = venv / "bin" / "python"
        install = subprocess.run(
            [str(python), "-m", "pip", "install", "--no-cache-dir", "--force-reinstall", "--disable-pip-version-check",
             "--index-url", f"http://127.0.0.1:{server.server_address[1]}/simple/", f"pip=={version}"],
            capture_output=True, text=True,
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert install.returncode == 0, install.stdout + install.stderr
    assert tagged.name in install.stdout, (
        install.stdout
    )  # pip downloaded the build-tagged file from the index
    reported = subprocess.run([str(python), "-m", "pip", "--version"], capture_output=True, text=True)
    assert reported.stdout.startswith(f"pip {version} from {venv}"), reported.stdout + reported.stderr
    glibc = next(venv.glob("lib/python3.*/site-packages/pip/_internal/utils/glibc.py")).read_text()
    assert "except OSError:" in glibc and "Patched by rewheel" in glibc
    record = next(venv.glob(f"lib/python3.*/site-packages/pip-{version}.dist-info/WHEEL")).read_text()
    assert "Build: 1rewheel" in record
    assert not pip_wheel_affected(tagged)[0]
