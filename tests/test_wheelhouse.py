"""`rewheel build -r`: from a requirements file to an index that alone installs the whole file on the target.

For each musllinux target: `rewheel build -r tests/data/musl-service-requirements.txt --publish INDEX` builds
what has no fitting wheel upstream (recipes from recipes/ or written on the fly), fetches the upstream wheels by
hash, verifies everything and publishes one static index. Then pip - inside the target's own musl CPython,
with that index as its only index and no cache - installs the whole file, and every package imports and does
a little real work (libffi through cffi, libyaml through PyYAML's C loader, the C speedups).

The aarch64 case needs the musl aarch64 CPython (`musl-cpython-3.11-aarch64`, run under qemu-user); the
build half of it runs anywhere (the zig backend cross-compiles; smoke says plainly where it cannot host). pip
inside it runs musl's loader to learn musl's version, so qemu is registered with binfmt_misc (as root) and the
runtime's wrapper shows the loader at /lib/ld-musl-aarch64.so.1 in a private mount namespace; a machine that
cannot do that says so through `unavailable`.
Build records live in the shared cache, so only a cold machine pays for the builds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name, parse_wheel_filename

from conftest import ensure_runtime, unavailable
from helpers.target_pip import PIP, clean_environment, pip_install_from_index

REPO = Path(__file__).resolve().parent.parent
SERVICE = REPO / "tests" / "data" / "musl-service-requirements.txt"
TARGETS = [
    pytest.param("musllinux_1_2_x86_64", "musl-cpython-3.11-x86_64", id="musl-x86_64"),
    pytest.param("musllinux_1_2_aarch64", "musl-cpython-3.11-aarch64", id="musl-aarch64"),
]
# What each distribution must do once installed, in the target's interpreter.
USE = """
import attr, attrs, certifi, charset_normalizer, click, frozenlist, idna, jinja2, multidict, pycparser
import dateutil.parser, requests, six, urllib3, wrapt, yarl, msgpack
import cffi, _cffi_backend, markupsafe, markupsafe._speedups, simplejson, simplejson._speedups, yaml
ffi = cffi.FFI()
ffi.cdef("int abs(int);")
assert ffi.dlopen(None).abs(-7) == 7                      # libffi built for the target, pycparser
assert yaml.load("a: [1, 2]", Loader=yaml.CSafeLoader) == {"a": [1, 2]}   # libyaml linked into yaml._yaml
assert markupsafe.escape("<b>") == "&lt;b&gt;"
assert simplejson.loads('{"x": 1}') == {"x": 1} and msgpack.unpackb(msgpack.packb([1, "a"])) == [1, "a"]
assert str(yarl.URL("http://h/p?q=1").query["q"]) == "1" and jinja2.Template("{{ x }}").render(x=3) == "3"
assert dateutil.parser.isoparse("2024-01-02").year == 2024 and os.path.isfile(certifi.where())
print("ALL-IMPORTED", len(sys.modules))
"""


def _rewheel_env(shared_cache: Path) -> dict[str, str]:
    return {**os.environ, "REWHEEL_CACHE_DIR": str(shared_cache)}


@pytest.fixture(scope="session")
def service_wheelhouses(shared_cache: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """target -> (the `build -r --json` result, index root, recipes-new folder); each built once per session."""
    done: dict[str, tuple[dict[str, object], Path, Path]] = {}

    def build(target: str) -> tuple[dict[str, object], Path, Path]:
        if target not in done:
            work = tmp_path_factory.mktemp(f"wheelhouse-{target}")
            index, new_recipes = work / "index", work / "recipes-new"
            # Build records kept in the shared cache: a second session finds the jobs up to date.
            wheelhouse = shared_cache / "test-wheelhouses" / target
            command = [
                sys.executable, "-m", "pipeline", "build", "-r", str(SERVICE), "--target", target,
                "--python", "3.11", "--publish", str(index), "--wheelhouse", str(wheelhouse),
                "--new-recipes", str(new_recipes), "--json",
            ]  # fmt: skip
            log = work / "build.log"
            with log.open("w") as stderr:
                completed = subprocess.run(
                    command, stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=REPO,
                    env=_rewheel_env(shared_cache),
                )  # fmt: skip
            assert completed.returncode == 0, f"build -r failed; log {log}:\n{log.read_text()[-4000:]}"
            done[target] = (json.loads(completed.stdout), index, new_recipes)
        return done[target]

    return build


@pytest.mark.slow
@pytest.mark.parametrize("target, runtime", TARGETS)
def test_build_r_publishes_a_complete_verified_index(service_wheelhouses, target: str, runtime: str) -> None:  # type: ignore[no-untyped-def]
    from pipeline.index.static import check_index
    from pipeline.recipe import load_recipe

    result, index, new_recipes = service_wheelhouses(target)
    assert result["ok"] and not result["problems"]
    gaps = result["gaps"]["requirements"]
    needs_build = {g["name"] for g in gaps if g["status"] == "needs-build"}
    assert {"markupsafe", "simplejson"} <= needs_build
    if target.endswith("aarch64"):
        assert needs_build == {"cffi", "markupsafe", "pyyaml", "simplejson"}

    # Every resolved distribution has exactly its version in the index, and the index is consistent.
    assert check_index(index) == []
    published = {str(item["filename"]) for item in result["published"]["files"]}
    in_index = {}
    for wheel in index.rglob("*.whl"):
        name, version, _, _ = parse_wheel_filename(wheel.name)
        in_index[canonicalize_name(name)] = str(version)
        assert wheel.name in published
    assert in_index == {g["name"]: g["version"] for g in gaps}

    # rewheel built each needs-build distribution (verified for the target); upstream wheels passed verify.
    built = {canonicalize_name(job["recipe"]): job for job in result["build"]["jobs"]}
    assert set(built) == needs_build and all(job["ok"] for job in built.values())
    for job in built.values():
        for smoke in job["smoke"]:
            # Smoke imported the wheel where this machine hosts the target; elsewhere it says why not.
            assert smoke.get("status") in ("passed", "cannot-host", "skipped"), smoke
    assert all(u["verified"] for u in result["upstream"])
    assert {u["name"] for u in result["upstream"]} == {g["name"] for g in gaps} - needs_build

    # Recipes written on the fly are in the review folder and load; existing recipes got a [[source]] added.
    written = {Path(w["recipe"]).stem: w for w in result["recipes_written"]}
    assert "simplejson" in written and written["simplejson"]["created"]
    assert not written["markupsafe"]["created"]  # recipes/markupsafe.toml + 2.1.1
    for path in new_recipes.glob("*.toml"):
        load_recipe(path)
    if target.endswith("aarch64"):
        assert [n.name for n in load_recipe(new_recipes / "pyyaml.toml").native] == ["libyaml"]
        assert [n.name for n in load_recipe(new_recipes / "cffi.toml").native] == ["libffi"]


@pytest.mark.slow
@pytest.mark.parametrize("target, runtime", TARGETS)
def test_the_index_alone_resolves_the_file_for_the_target(
    service_wheelhouses, target: str, runtime: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """pip here, told the target's platforms, finds every pin in the index and nothing it lacks (no runtime needed)."""
    _, index, _ = service_wheelhouses(target)
    arch = "x86_64" if target.endswith("x86_64") else "aarch64"
    platforms = [o for minor in (2, 1, 0) for o in ("--platform", f"musllinux_1_{minor}_{arch}")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    completed = subprocess.run(
        [
            sys.executable, "-m", "pip", "download", "--isolated", "--no-cache-dir", "--disable-pip-version-check",
            "--only-binary", ":all:", *platforms, "--python-version", "3.11", "--implementation", "cp",
            "--abi", "cp311", "--index-url", index.resolve().joinpath("simple").as_uri(),
            "--dest", str(tmp_path / "got"), "-r", str(SERVICE),
        ],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    got = {p.name for p in (tmp_path / "got").iterdir()}
    assert got == {p.name for p in index.rglob("*.whl")}


@pytest.fixture(scope="session")
def pip_for_target(pypi_file, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    from pipeline.unpack import unpack

    return unpack(pypi_file(*PIP), tmp_path_factory.mktemp("pip-for-target") / "pip")


@pytest.mark.slow
@pytest.mark.parametrize("target, runtime", TARGETS)
def test_pip_installs_the_whole_file_from_the_index_alone(
    service_wheelhouses, pip_for_target: Path, runtime_env, target: str, runtime: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    built = ensure_runtime(runtime)
    # pip learns musl's version by running the interpreter's PT_INTERP, /lib/ld-musl-<arch>.so.1: under qemu-user
    # that needs qemu registered with binfmt_misc and the runtime wrapper's private mount namespace.
    problem = built.child_exec_problem()
    if problem:
        unavailable(f"{runtime}: {problem}")
    interpreter = Path(built.python())
    _, index, _ = service_wheelhouses(target)
    site = tmp_path / "site"
    # --isolated: no pip.conf and no PIP_* variables, so this machine's own index settings cannot leak in.
    env = clean_environment()
    install = pip_install_from_index(
        interpreter, pip_for_target, index, SERVICE, site, report=tmp_path / "report.json"
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    installed = {canonicalize_name(p.name.split("-")[0]) for p in site.glob("*.dist-info")}
    wanted = {
        canonicalize_name(line.split("==")[0])
        for line in SERVICE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert installed == wanted
    # The binary wheels pip chose carry the target's musllinux tags: it found musl 1.2 by running the real loader.
    chosen = [
        Path(item["download_info"]["url"]).name
        for item in json.loads((tmp_path / "report.json").read_text())["install"]
    ]
    arch = "x86_64" if target.endswith("x86_64") else "aarch64"
    binary = {w: {t.platform for t in parse_wheel_filename(w)[3]} for w in chosen}
    binary = {w: p for w, p in binary.items() if p != {"any"}}
    print(f"pip inside {runtime} chose:", *sorted(binary), sep="\n  ")
    assert binary and all(p <= {f"musllinux_1_{m}_{arch}" for m in (0, 1, 2)} for p in binary.values()), (
        binary
    )
    assert any(f"musllinux_1_2_{arch}" in p for p in binary.values()), binary
    used = subprocess.run(
        [str(interpreter), "-s", "-c", "import os, sys\n" + USE],
        env={**env, "PYTHONPATH": str(site)}, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert used.returncode == 0, used.stderr[-3000:]
    assert "ALL-IMPORTED" in used.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--target", "musllinux_1_2_aarch64", "--target", "musllinux_1_2_x86_64"], "exactly one --target"),
        (["--target", "musllinux_1_2_aarch64", "recipes/cffi.toml"], "not both"),
        (["--target", "no_such_target"], "unknown target"),
    ],
)
def test_build_r_bad_input_is_one_line(run_cli, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run_cli("build", "-r", str(SERVICE), *args)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_build_r_missing_file(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run_cli("build", "-r", str(tmp_path / "nope.txt"), "--target", "musllinux_1_2_aarch64")
    assert code == 2 and "no such requirements file" in err
