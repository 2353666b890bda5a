"""`rewheel gaps` and `rewheel recipe new` on a real requirements file, against the real index.

The comparison test holds gaps to pip itself: for every distribution of the resolved set, pip's own
`pip download --only-binary :all:` for the target's platforms succeeds exactly when gaps says a wheel fits
(upstream-wheel or pure), and then picks the very file gaps named.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from packaging.tags import Tag

from pipeline.gaps import best_wheel, find_gaps, target_tags
from pipeline.targets import get_target

REPO = Path(__file__).resolve().parent.parent
SERVICE = REPO / "tests" / "data" / "musl-service-requirements.txt"
TARGETS = ["musllinux_1_2_aarch64", "musllinux_1_2_x86_64"]
# What pip must be told to see the platforms a musllinux_1_2 loader accepts: pip expands manylinux
# aliases itself but not older musllinux policies, so each is named.
PIP_PLATFORMS = {
    "musllinux_1_2_aarch64": ["musllinux_1_2_aarch64", "musllinux_1_1_aarch64", "musllinux_1_0_aarch64"],
    "musllinux_1_2_x86_64": ["musllinux_1_2_x86_64", "musllinux_1_1_x86_64", "musllinux_1_0_x86_64"],
}


@pytest.fixture(scope="module")
def reports() -> dict[str, object]:
    return {target: find_gaps(SERVICE, target, "3.11", recipes_dir=REPO / "recipes") for target in TARGETS}


def test_target_tags_rank_like_pip() -> None:
    tags = target_tags(get_target("musllinux_1_2_aarch64"), "3.11")
    assert tags[0] == Tag("cp311", "cp311", "musllinux_1_2_aarch64")
    assert Tag("cp311", "cp311", "musllinux_1_1_aarch64") in tags
    assert Tag("cp37", "abi3", "musllinux_1_2_aarch64") in tags
    assert Tag("py3", "none", "any") in tags
    assert not any("x86_64" in t.platform or "manylinux" in t.platform for t in tags)
    manylinux = target_tags(get_target("manylinux_2_17_aarch64"), "3.11")
    assert Tag("cp311", "cp311", "manylinux2014_aarch64") in manylinux
    assert Tag("cp311", "cp311", "manylinux_2_28_aarch64") not in manylinux


def test_best_wheel_prefers_the_binary_wheel_pip_would_pick() -> None:
    from pipeline.gaps import IndexFile

    files = [
        IndexFile("charset_normalizer-3.2.0-py3-none-any.whl", "", "0" * 64),
        IndexFile("charset_normalizer-3.2.0-cp311-cp311-musllinux_1_1_aarch64.whl", "", "1" * 64),
        IndexFile("charset_normalizer-3.2.0-cp311-cp311-musllinux_1_1_x86_64.whl", "", "2" * 64),
        IndexFile("charset_normalizer-3.2.0.tar.gz", "", "3" * 64),
    ]
    tags = target_tags(get_target("musllinux_1_2_aarch64"), "3.11")
    chosen = best_wheel(files, tags)
    assert chosen is not None and chosen.filename.endswith("musllinux_1_1_aarch64.whl")


def test_service_file_gaps_on_musl_aarch64(reports) -> None:  # type: ignore[no-untyped-def]
    report = reports["musllinux_1_2_aarch64"]
    by_name = {g.name: g for g in report.requirements}
    assert len(by_name) >= 20  # the 20 pins; nothing else is pulled in since every dependency is pinned
    needs = {n for n, g in by_name.items() if g.status == "needs-build"}
    assert needs == {"cffi", "markupsafe", "pyyaml", "simplejson"}
    assert {n for n, g in by_name.items() if g.status == "upstream-wheel"} >= {"msgpack", "wrapt", "yarl"}
    assert by_name["requests"].status == "pure" and by_name["six"].status == "pure"
    assert by_name["cffi"].recipe == REPO / "recipes" / "cffi.toml"
    assert not by_name["cffi"].recipe_has_version  # the recipe pins 1.17.1, not 1.15.1
    assert by_name["simplejson"].recipe is None
    assert by_name["cffi"].file is not None and by_name["cffi"].file.filename == "cffi-1.15.1.tar.gz"
    assert by_name["yarl"].file is not None and "musllinux_1_1_aarch64" in by_name["yarl"].file.filename
    # The same file differs per target: x86_64 has musllinux wheels for cffi and pyyaml.
    x86 = {g.name: g.status for g in reports["musllinux_1_2_x86_64"].requirements}
    assert x86["cffi"] == "upstream-wheel" and x86["pyyaml"] == "upstream-wheel"
    assert x86["simplejson"] == "needs-build"


def _pip_download(target: str, name: str, version: str, dest: Path) -> tuple[bool, list[str]]:
    platforms = [option for p in PIP_PLATFORMS[target] for option in ("--platform", p)]
    out = dest / f"{name}-{version}"
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--quiet",
        "--disable-pip-version-check", *platforms, "--python-version", "3.11", "--implementation", "cp",
        "--abi", "cp311", "--dest", str(out), f"{name}=={version}",
    ]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True)
    files = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    return completed.returncode == 0, files


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_gaps_matches_what_pip_downloads(reports, target: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    report = reports[target]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(
            pool.map(lambda g: _pip_download(target, g.name, g.version, tmp_path), report.requirements)
        )
    mismatches = []
    for gap, (downloaded, files) in zip(report.requirements, results, strict=True):
        # A wheel that fits by tag but fails verify is one pip would still take: gaps names it as rejected.
        by_tag = [gap.rejected[0][0]] if gap.rejected else [gap.file.filename] if gap.file else []
        has_wheel = gap.status in ("upstream-wheel", "pure") or bool(gap.rejected)
        if downloaded != has_wheel:
            mismatches.append(
                f"{gap.name}=={gap.version}: gaps says {gap.status}, pip download ok={downloaded}"
            )
        elif has_wheel and files != by_tag:
            mismatches.append(f"{gap.name}: gaps picked {by_tag}, pip downloaded {files}")
    assert not mismatches, mismatches


def test_gaps_cli_json(run_cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run_cli("gaps", "-r", str(SERVICE), "--target", "musllinux_1_2_aarch64", "--json")
    assert code == 0
    data = json.loads(out)
    entries = {e["name"]: e for e in data["requirements"]}
    assert set(entries["cffi"]) >= {"name", "version", "status", "recipe", "file"}
    assert entries["cffi"]["recipe"].endswith("recipes/cffi.toml")
    # recipes/pyyaml.toml builds another version: the recipe is named, and that it lacks this version.
    assert entries["pyyaml"]["status"] == "needs-build"
    assert entries["pyyaml"]["recipe"].endswith("recipes/pyyaml.toml")
    assert entries["pyyaml"]["recipe_has_version"] is False
    assert data["counts"]["needs-build"] == 4


@pytest.mark.parametrize(
    "args, message",
    [
        (["--target", "musllinux_9_9_aarch64"], "unknown target"),
        (["--target", "musllinux_1_2_aarch64", "--python", "three"], "--python must be"),
    ],
)
def test_gaps_bad_input_is_one_line(run_cli, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run_cli("gaps", "-r", str(SERVICE), *args)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_gaps_missing_file(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run_cli("gaps", "-r", str(tmp_path / "nope.txt"), "--target", "musllinux_1_2_aarch64")
    assert code == 2 and "no such requirements file" in err


# ------------------------------------------------------------------------------------------- recipe new


@pytest.mark.slow  # recipe new builds the sdist once (zig) and imports the wheel on the target
def test_recipe_new_writes_a_checked_recipe(run_cli, tmp_path: Path, runtime_env) -> None:  # type: ignore[no-untyped-def]
    from pipeline.recipe import load_recipe
    from pipeline.util import sha256_file

    out = tmp_path / "new"
    code, _, err = run_cli(
        "recipe", "new", "simplejson==3.17.6", "--target", "musllinux_1_2_x86_64", "-o", str(out)
    )
    assert code == 0, err
    recipe = load_recipe(out / "simplejson.toml")
    assert recipe.targets == ["musllinux_1_2_x86_64"]
    source = recipe.source_for("3.17.6")
    assert source.filename == "simplejson-3.17.6.tar.gz"
    from pipeline.fetch import Pin, cached_path

    assert sha256_file(cached_path(Pin(source.filename, source.sha256))) == source.sha256
    assert recipe.test.imports == ["simplejson", "simplejson._speedups"]
    assert "Build backend: setuptools.build_meta:__legacy__" in (out / "simplejson.toml").read_text()
    code, _, err = run_cli("recipes", "check", str(out))
    assert code == 0, err


def test_recipe_new_pins_recognised_native_libraries(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from pipeline.recipe import load_recipe

    code, out, err = run_cli("recipe", "new", "pyyaml==6.0.1", "-o", str(tmp_path), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["natives_pinned"] == ["libyaml"]
    recipe = load_recipe(tmp_path / "pyyaml.toml")
    assert [n.name for n in recipe.native] == ["libyaml"] and recipe.native[0].build == "cmake"
    assert "yaml._yaml" in recipe.test.imports and "yaml" in recipe.test.imports


def test_recipe_new_adds_a_source_to_an_existing_recipe(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from pipeline.recipe import load_recipe

    out = tmp_path / "recipes"
    shutil.copytree(REPO / "patches" / "cffi", tmp_path / "patches" / "cffi")  # the recipe's pinned patches
    code, _, err = run_cli(
        "recipe", "new", "cffi==1.15.1", "-o", str(out), "--target", "musllinux_1_2_aarch64"
    )
    assert code == 0, err
    original = (REPO / "recipes" / "cffi.toml").read_text()
    written = (out / "cffi.toml").read_text()
    recipe = load_recipe(out / "cffi.toml")
    assert [s.version for s in recipe.source] == ["1.17.1", "1.15.1"]
    assert [n.name for n in recipe.native] == ["libffi"]
    # tomlkit kept the file as it was: every original line is still there, comments included.
    assert [line for line in original.splitlines() if line not in written.splitlines()] == []
    code, _, err = run_cli("recipes", "check", str(out))
    assert code == 0, err


def test_recipe_new_says_where_rust_crates_come_from(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # bcrypt 4.0.1 builds its core with setuptools-rust and ships only a Cargo.lock: the zig backend builds it
    # for the musllinux targets where the crates registry is reachable, and the recipe says so.
    code, out, err = run_cli("recipe", "new", "bcrypt==4.0.1", "-o", str(tmp_path), "--json")
    assert code == 4, err  # written, but the probe build cannot fetch its crates here: needs review
    written = json.loads(out)
    assert written["refused"] == {}
    assert written["rust_crates"].startswith("crates not vendored in the sdist")
    assert "builds only where the crates registry is reachable" in (tmp_path / "bcrypt.toml").read_text()


@pytest.mark.slow
def test_recipe_new_on_a_maturin_sdist_finds_its_module_and_vendored_crates(
    run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    # orjson 3.13.0: maturin, Python package under pysrc/, crates vendored in include/cargo; the probe build
    # (a real Rust build for the first target) lists what the wheel holds. Run outside the repository, as a new
    # user would: its own recipes/orjson.toml already lists 3.13.0 and would be taken as it is.
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("recipe", "new", "orjson==3.13.0", "-o", str(tmp_path), "--json")
    assert code == 0, err
    written = json.loads(out)
    assert written["created"] and written["build_backend"] == "maturin" and "orjson" in written["imports"]
    assert written["refused"] == {}
    assert written["rust_crates"].startswith("crates vendored in the sdist (include/cargo/)")


@pytest.mark.parametrize("requirement", ["cffi", "cffi>=1.15", "==1.0"])
def test_recipe_new_needs_an_exact_pin(run_cli, requirement: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run_cli("recipe", "new", requirement, "-o", str(tmp_path))
    assert code == 2 and "NAME==VERSION" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_markers_are_the_targets_not_the_hosts(tmp_path: Path) -> None:
    """pip's --platform would evaluate these markers on this x86_64 Linux host and keep neither."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        'pywin32==306 ; sys_platform == "win32"\n'
        'greenlet==3.0.3 ; platform_machine == "aarch64"\n'
        "six==1.16.0\n"
    )
    names = {
        target: {g.name for g in find_gaps(requirements, target, "3.11").requirements}
        for target in ("musllinux_1_2_aarch64", "win_amd64")
    }
    assert names["musllinux_1_2_aarch64"] == {"greenlet", "six"}
    assert names["win_amd64"] == {"pywin32", "six"}


# ------------------------------------------------------------------------------------------- verify (issue #23)


@pytest.mark.slow
def test_gaps_verifies_upstream_wheels_like_build_r(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """numpy 2.2.6's only musllinux wheel grafts a libgcc_s with DT_RELR: fine on the default musllinux_1_2 target
    (musl 1.2.5, supported Alpine), an error on the legacy -musl1.2.3 one. gaps must then not call it
    upstream-wheel there: it shows the finding and falls to the sdist, as build -r would refuse the wheel."""
    from pipeline.fetch import Pin, fetch
    from pipeline.index.gate import check_verified

    legacy = "musllinux_1_2_x86_64-musl1.2.3"
    requirements = tmp_path / "r.txt"
    requirements.write_text("numpy==2.2.6\n")
    code, out, err = run_cli("gaps", "-r", str(requirements), "--target", "musllinux_1_2_x86_64", "--json")
    assert code == 0, err
    (entry,) = json.loads(out)["requirements"]
    assert entry["status"] == "upstream-wheel" and not entry.get("rejected"), entry
    code, out, err = run_cli("gaps", "-r", str(requirements), "--target", legacy, "--json")
    assert code == 0, err
    (entry,) = json.loads(out)["requirements"]
    assert entry["status"] == "needs-build" and entry["file"] == "numpy-2.2.6.tar.gz"
    (rejected,) = entry["rejected"]
    assert rejected["file"] == "numpy-2.2.6-cp311-cp311-musllinux_1_2_x86_64.whl"
    assert rejected["finding"].startswith("relr-unsupported")
    # The very check build -r runs on the wheel, with the same finding.
    report = find_gaps(requirements, legacy, "3.11", verify=False)
    (gap,) = report.requirements
    assert gap.status == "upstream-wheel" and gap.file is not None  # by tag alone it would have fitted
    path = fetch(Pin(filename=gap.file.filename, sha256=gap.file.sha256, url=gap.file.url))
    assert check_verified(path, legacy) == (False, rejected["finding"])
    code, out, _ = run_cli("gaps", "-r", str(requirements), "--target", legacy)
    assert f"fits by tag but fails verify for {legacy}: relr-unsupported" in out
