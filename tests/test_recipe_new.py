"""A new user's first recipes build (issue #25): `recipe new` from a probe build, `build -r` that never lets one
package stop the others, recipe folders the user controls, compiler defaults for old C code, recipe flags that
add to the backend's, and the quarantine folder.

Real sdists from the index (pinned by the sha256 the index lists, checked by the fetch layer), real zig builds,
real imports on the musl CPython runtime. The builds are behind `slow`; the fast tests stop before any compiler
runs (a refused target, --no-build, a pin whose hash does not match).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ensure_runtime
from pipeline.util import sha256_file

REPO = Path(__file__).resolve().parent.parent
X86 = "musllinux_1_2_x86_64"
MUSL_X86 = "musl-cpython-3.11-x86_64"
SIMPLEJSON_WRONG_PIN = """name = "simplejson"
targets = ["musllinux_1_2_x86_64"]
python = ["3.11"]

[[source]]
version = "3.17.6"
kind = "sdist"
filename = "simplejson-3.17.6.tar.gz"
# my own edit: a wrong pin, so the job fails at fetch before anything compiles
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"

[test]
imports = ["simplejson"]
"""


def _rewheel(*args: str, cwd: Path, timeout: int = 3600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )


# ------------------------------------------------------------------------------------- recipe new, fast


def test_recipe_new_without_a_build_is_written_and_needs_review(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from pipeline.recipe import load_recipe

    code, _, err = run_cli(
        "recipe", "new", "netifaces==0.11.0", "--target", X86, "-o", str(tmp_path), "--no-build"
    )
    assert code == 4, err
    text = (tmp_path / "netifaces.toml").read_text()
    assert "# TO COMPLETE: [test] below. not built (--no-build)" in text
    assert "A scan of the sdist (not a build) suggests: netifaces" in text
    assert load_recipe(tmp_path / "netifaces.toml").test.imports == []
    lines = [line for line in err.splitlines() if line.startswith("rewheel:")]
    assert len(lines) == 1 and "needs review" in lines[0] and "netifaces.toml" in lines[0]
    assert run_cli("recipes", "check", str(tmp_path))[0] == 0


def test_recipe_new_refused_target_still_writes_the_recipe(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # bcrypt 4.0.1 builds its core with setuptools-rust: the zig backend builds Rust for Linux targets only, so
    # for win_amd64 it refuses and no probe build runs.
    code, out, err = run_cli(
        "recipe", "new", "bcrypt==4.0.1", "--target", "win_amd64", "-o", str(tmp_path), "--json"
    )
    assert code == 4, err
    data = json.loads(out)
    assert data["created"] and "zig backend refuses" in data["needs_review"] and data["imports"] == []
    assert "# TO COMPLETE:" in (tmp_path / "bcrypt.toml").read_text()


# ------------------------------------------------------------------------------------- build -r, fast


@pytest.mark.parametrize("folder", ["--recipes", "--new-recipes"])
def test_build_r_one_failure_stops_nothing_and_recipes_are_kept(run_cli, tmp_path: Path, folder: str) -> None:  # type: ignore[no-untyped-def]
    """The user's recipe (in their recipes folder, or edited in the review folder) is used as it is and never
    rewritten; its job fails (a wrong pin), and that is one row with its reason while the pure wheel is still
    fetched and verified; nothing is published and the command names what is missing."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("simplejson==3.17.6\nsix==1.16.0\n")
    mine, review = tmp_path / "recipes", tmp_path / "recipes-new"
    mine.mkdir()
    review.mkdir()
    recipe = (mine if folder == "--recipes" else review) / "simplejson.toml"
    recipe.write_text(SIMPLEJSON_WRONG_PIN)
    before = sha256_file(recipe)
    index = tmp_path / "index"
    code, out, err = run_cli(
        "build", "-r", str(requirements), "--target", X86, "--python", "3.11", "--backend", "zig",
        "--recipes", str(mine), "--new-recipes", str(review), "--wheelhouse", str(tmp_path / "wh"),
        "--publish", str(index), "--json",
    )  # fmt: skip
    assert code == 1, err
    result = json.loads(out)
    assert result["recipes"] == {"simplejson": str(recipe)} and result["recipes_written"] == []
    assert sha256_file(recipe) == before  # never rewritten
    assert "sha256 mismatch" in result["reasons"]["simplejson"]
    assert set(result["reasons"]) == {"simplejson"}
    assert [(u["name"], u["verified"]) for u in result["upstream"]] == [("six", True)]
    assert result["missing"] == ["simplejson==3.17.6"] and result["published"] is None
    assert not index.exists()
    assert "not publishing" in err and "simplejson==3.17.6" in err


def test_build_r_names_the_recipe_options(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run_cli("build", "--recipes", str(tmp_path), "--target", X86)
    assert code == 2 and "go with -r" in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------- quarantine, fast


def test_verify_of_a_wheelhouse_skips_quarantine(run_cli, tmp_path: Path, markupsafe_wheel: Path) -> None:  # type: ignore[no-untyped-def]
    wheelhouse = tmp_path / "wheelhouse"
    (wheelhouse / "quarantine").mkdir(parents=True)
    shutil.copy(markupsafe_wheel, wheelhouse / markupsafe_wheel.name)
    shutil.copy(markupsafe_wheel, wheelhouse / "quarantine" / markupsafe_wheel.name)
    code, out, err = run_cli("verify", str(wheelhouse), "--target", "manylinux_2_17_x86_64")
    assert code == 0, out + err
    assert len([line for line in out.splitlines() if line.startswith(markupsafe_wheel.name)]) == 1
    assert f"skipped 1 quarantined wheel(s) in {wheelhouse / 'quarantine'}" in err
    # Named itself, the quarantine folder is verified.
    code, out, _ = run_cli(
        "verify", str(wheelhouse / "quarantine"), "--target", "manylinux_2_17_x86_64", "--json"
    )
    assert code == 0 and len(json.loads(out)["results"]) == 1
    # Both at once: the same file name twice, told apart by its path.
    code, out, _ = run_cli(
        "verify", str(wheelhouse), str(wheelhouse / "quarantine"), "--target", "manylinux_2_17_x86_64"
    )
    assert code == 0
    assert {line.split(" on ")[0] for line in out.splitlines() if " on manylinux" in line} == {
        str(wheelhouse / markupsafe_wheel.name),
        str(wheelhouse / "quarantine" / markupsafe_wheel.name),
    }


def test_a_good_build_clears_its_quarantined_copy(tmp_path: Path, markupsafe_wheel: Path) -> None:
    from pipeline.builders.orchestrator import _clear_quarantine
    from pipeline.plan import plan
    from pipeline.recipe import load_recipe

    jobs = plan([load_recipe(REPO / "recipes" / "markupsafe.toml")], [X86])
    job, other = jobs[0], jobs[1]
    quarantine = tmp_path / "quarantine"
    quarantine.mkdir()
    for number, owner in enumerate((job, other)):
        wheel = quarantine / f"{number}-{markupsafe_wheel.name}"
        shutil.copy(markupsafe_wheel, wheel)
        Path(f"{wheel}.verify.json").write_text("{}")
        Path(f"{wheel}.build.json").write_text(json.dumps({"job": owner.to_json()}))
    _clear_quarantine(job, tmp_path)
    assert sorted(p.name for p in quarantine.iterdir()) == sorted(
        f"1-{markupsafe_wheel.name}{suffix}" for suffix in ("", ".verify.json", ".build.json")
    )


# ------------------------------------------------------------------------------------- builds (slow)


@pytest.mark.slow
def test_recipe_new_ruamel_yaml_clib_from_its_build(tmp_path: Path, runtime_env) -> None:  # type: ignore[no-untyped-def]
    """ruamel.yaml.clib 0.2.7: the extension `_ruamel_yaml` is declared in the __init__.py of a namespace
    package (no scan finds it), its C code needs the lenient defaults, and it imports ruamel.yaml."""
    from pipeline.recipe import load_recipe

    ensure_runtime(MUSL_X86)
    done = _rewheel("recipe", "new", "ruamel.yaml.clib==0.2.7", "--target", X86, "-o", str(tmp_path), "--json",
                    cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(done.stdout)
    assert data["created"] and data["needs_review"] == ""
    recipe = load_recipe(tmp_path / "ruamel-yaml-clib.toml")
    assert recipe.test.imports == ["_ruamel_yaml"]
    (requirement,) = recipe.test.requires
    assert requirement.startswith("ruamel-yaml==") and "--hash=sha256:" in requirement


@pytest.mark.slow
@pytest.mark.parametrize(
    "requirement, wanted, never",
    [
        ("psutil==5.9.5", {"psutil", "psutil._psutil_linux", "psutil._psutil_posix"},
         {"psutil._psutil_aix", "psutil._psutil_bsd", "psutil._psutil_osx", "psutil._psutil_sunos",
          "psutil._psutil_windows"}),
        ("lz4==4.3.2", {"lz4", "lz4.block._block", "lz4.frame._frame"}, {"lz4.stream._stream"}),
    ],
)  # fmt: skip
def test_recipe_new_lists_only_what_the_target_build_makes(
    tmp_path: Path, runtime_env, requirement: str, wanted: set[str], never: set[str]
) -> None:  # type: ignore[no-untyped-def]
    ensure_runtime(MUSL_X86)
    done = _rewheel(
        "recipe", "new", requirement, "--target", X86, "-o", str(tmp_path), "--json", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    imports = set(json.loads(done.stdout)["imports"])
    assert wanted <= imports and not imports & never


@pytest.mark.slow
def test_strict_c_switch_keeps_clangs_hard_errors(tmp_path: Path, runtime_env) -> None:  # type: ignore[no-untyped-def]
    """netifaces 0.11.0 builds with the default (lenient) flags (the scenario test and recipe new show it);
    with `[build] strict-c = true` it stops on the error clang 16 made of int-conversion."""
    from pipeline.gaps import find_gaps

    requirements = tmp_path / "requirements.txt"
    requirements.write_text("netifaces==0.11.0\n")
    (gap,) = find_gaps(requirements, X86, "3.11").requirements
    assert gap.sdist is not None
    recipe = tmp_path / "netifaces.toml"
    recipe.write_text(
        f'name = "netifaces"\ntargets = ["{X86}"]\npython = ["3.11"]\n\n[[source]]\nversion = "0.11.0"\n'
        f'kind = "sdist"\nfilename = "{gap.sdist.filename}"\nsha256 = "{gap.sdist.sha256}"\n\n'
        "[build]\nstrict-c = true\n"
    )
    assert _rewheel("recipes", "check", str(recipe), cwd=tmp_path).returncode == 0
    done = _rewheel("build", str(recipe), "--backend", "zig", "--no-smoke", "--wheelhouse", str(tmp_path / "wh"),
                    "--json", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 1
    (job,) = json.loads(done.stdout)["jobs"]
    assert job["stage"] == "build" and "int-conversion" in job["message"], job["message"]


@pytest.mark.slow
def test_recipe_cflags_add_to_the_optimisation_flags(tmp_path: Path) -> None:
    """A recipe CFLAGS used to replace sysconfig's `-O3 -DNDEBUG -fwrapv -Wall` (setuptools >= 72): zig then
    compiled in Debug mode and its UBSan runtime brought fork/execve/statx imports. Now both are on the compile
    line, and the extension imports none of those."""
    import io
    import zipfile

    from elftools.elf.elffile import ELFFile

    from pipeline.builders.backends import BuildRequest
    from pipeline.builders.backends.zig.builder import ZigBackend
    from pipeline.builders.prepare import prepare
    from pipeline.plan import plan
    from pipeline.recipe import load_recipe

    text = (REPO / "recipes" / "markupsafe.toml").read_text()
    recipe_path = tmp_path / "markupsafe.toml"
    recipe_path.write_text(text + '\n[build]\nenvironment = { CFLAGS = "-DREWHEEL_RECIPE_FLAG=1" }\n')
    job = next(j for j in plan([load_recipe(recipe_path)], [X86]) if j.python == "3.11")
    prepared = prepare(job, tmp_path / "work")
    result = ZigBackend().build(
        BuildRequest(job=job, source_tree=prepared.tree, source_file=prepared.source_file,
                     out_dir=tmp_path / "out", work_dir=tmp_path / "work")
    )  # fmt: skip
    compiles = [
        line for line in result.log.splitlines() if "-DREWHEEL_RECIPE_FLAG=1" in line and " -c " in line
    ]
    assert compiles, result.log[-3000:]
    assert all("-O3" in line.split() for line in compiles), compiles
    (wheel,) = result.wheels
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".so")]
        elf = ELFFile(io.BytesIO(archive.read(name)))
    undefined = {
        s.name for s in elf.get_section_by_name(".dynsym").iter_symbols() if s["st_shndx"] == "SHN_UNDEF"
    }
    assert not undefined & {"fork", "execve", "statx", "pthread_create"}, sorted(undefined)


@pytest.mark.slow
def test_old_pins_from_requirements_to_an_imported_wheelhouse(tmp_path: Path, runtime_env) -> None:  # type: ignore[no-untyped-def]
    """The scenario of issue #25 with its own pins: gaps, `recipe new` for each needs-build distribution, then
    `build -r --publish`: a complete index, every built wheel imported on the target, and no recipe edited or
    rewritten along the way."""
    from pipeline.index.static import check_index

    ensure_runtime(MUSL_X86)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("netifaces==0.11.0\nruamel.yaml.clib==0.2.7\nsimplejson==3.17.6\nsix==1.16.0\n")
    mine, review, index = tmp_path / "recipes", tmp_path / "recipes-new", tmp_path / "index"
    mine.mkdir()

    gaps = _rewheel("gaps", "-r", str(requirements), "--target", X86, "--python", "3.11", "--recipes", str(mine),
                    "--json", cwd=tmp_path)  # fmt: skip
    assert gaps.returncode == 0, gaps.stderr[-2000:]
    statuses = {g["name"]: g["status"] for g in json.loads(gaps.stdout)["requirements"]}
    needs_build = {name for name, status in statuses.items() if status == "needs-build"}
    assert needs_build == {"netifaces", "ruamel-yaml-clib", "simplejson"}, statuses

    for name in sorted(needs_build):
        version = next(
            line.split("==")[1]
            for line in requirements.read_text().split()
            if line.lower().replace(".", "-").startswith(name)
        )
        done = _rewheel("recipe", "new", f"{name}=={version}", "--target", X86, "--python", "3.11",
                        "-o", str(review), "--recipes", str(mine), cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, (name, done.stderr[-3000:])
    written = {path: sha256_file(path) for path in review.glob("*.toml")}
    assert len(written) == 3

    done = _rewheel("build", "-r", str(requirements), "--target", X86, "--python", "3.11", "--recipes", str(mine),
                    "--new-recipes", str(review), "--wheelhouse", str(tmp_path / "wh"), "--publish", str(index),
                    "--json", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout)
    assert result["ok"] and result["recipes_written"] == [] and result["missing"] == []
    assert {path: sha256_file(path) for path in review.glob("*.toml")} == written  # used as they are
    jobs = result["build"]["jobs"]
    assert {job["recipe"] for job in jobs} == needs_build
    for job in jobs:
        assert job["ok"] and [s["status"] for s in job["smoke"]] == ["passed"], job
    assert check_index(index) == []
    assert len(list(index.rglob("*.whl"))) == 4


def test_cibuildwheel_recipe_flags_add_to_the_build_pythons(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CIBW_ENVIRONMENT as cibuildwheel itself evaluates it (its bashlex parser, the build Python first on PATH):
    the recipe's CFLAGS come after that Python's sysconfig CFLAGS (-O3 survives), LDFLAGS keep what is set."""
    import os
    import sysconfig

    from cibuildwheel.environment import parse_environment

    from pipeline.builders.backends.cibuildwheel import cibuildwheel_config
    from pipeline.plan import plan
    from pipeline.recipe import load_recipe

    recipe_path = tmp_path / "markupsafe.toml"
    recipe_path.write_text(
        (REPO / "recipes" / "markupsafe.toml").read_text()
        + '\n[build]\nenvironment = { CFLAGS = "-DREWHEEL_RECIPE_FLAG=\\"a b\\"", LDFLAGS = "-lm", OTHER = "$x" }\n'
    )
    job = next(j for j in plan([load_recipe(recipe_path)], [X86]) if j.python == "3.11")
    environment = parse_environment(cibuildwheel_config(job)["CIBW_ENVIRONMENT"])
    # A folder whose `python` is the interpreter running the tests, as cibuildwheel puts the build Python first.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    values = environment.as_dictionary(
        {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "LDFLAGS": "-L/x"}
    )
    own = str(sysconfig.get_config_var("CFLAGS"))
    assert "-O3" in own.split()
    assert values["CFLAGS"].split() == [*own.split(), '-DREWHEEL_RECIPE_FLAG="a', 'b"']
    assert values["LDFLAGS"].split() == ["-L/x", "-lm"] and values["OTHER"] == "$x"
