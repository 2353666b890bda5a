"""Target catalogue and job planning against cibuildwheel's own identifiers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.builders.backends.cibuildwheel_ids import job_json
from pipeline.errors import RecipeError, RewheelError
from pipeline.plan import ANY_PYTHON, build_order, plan
from pipeline.recipe import parse_recipe
from pipeline.targets import catalogue, get_target, match_targets

DESIGN_NAMES = {
    "manylinux_2_17_x86_64", "manylinux_2_28_x86_64", "manylinux_2_17_aarch64", "musllinux_1_2_x86_64",
    "musllinux_1_2_aarch64", "win_amd64", "win_amd64-servercore", "win_amd64-nanoserver", "win_arm64",
}  # fmt: skip


def test_catalogue_has_design_targets() -> None:
    assert DESIGN_NAMES <= set(catalogue())
    nano = get_target("win_amd64-nanoserver")
    assert nano.platform_tag == "win_amd64" and nano.edition == "nanoserver" and nano.channel == "nanoserver"
    assert get_target("musllinux_1_2_aarch64").is_musl
    assert {"musllinux_1_2_x86_64", "musllinux_1_2_aarch64"} <= {t.name for t in match_targets("musllinux_*")}
    with pytest.raises(RewheelError, match="unknown target 'win_amd65'"):
        get_target("win_amd65")


def test_build_identifiers_are_cibuildwheels_own(tmp_path: Path) -> None:
    """cibuildwheel prints its identifiers without any container engine: ours must be among them."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "probe"\nversion = "1"\n')
    from pipeline.builders.backends.cibuildwheel_ids import build_identifier, cibw_image

    ours = {
        build_identifier(t, "3.11")
        for t in catalogue().values()
        if t.os == "linux" and t.arch in ("x86_64", "aarch64") and cibw_image(t)
    }
    result = subprocess.run(
        [sys.executable, "-m", "cibuildwheel", "--print-build-identifiers", "--platform", "linux",
         "--archs", "x86_64,aarch64", "."],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "CIBW_BUILD": "cp311-*"},
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    theirs = set(result.stdout.split())
    assert ours <= theirs, (ours, theirs)
    windows = subprocess.run(
        [sys.executable, "-m", "cibuildwheel", "--print-build-identifiers", "--platform", "windows",
         "--archs", "AMD64,ARM64", "."],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "CIBW_BUILD": "cp311-*"},
        cwd=tmp_path,
    )  # fmt: skip
    assert windows.returncode == 0, windows.stderr
    assert {"cp311-win_amd64", "cp311-win_arm64"} <= set(windows.stdout.split())


def test_linux_targets_come_from_auditwheels_policies() -> None:
    """Every manylinux_2_N / musllinux_1_N level and arch auditwheel's installed policy knows (for the arches
    rewheel offers) is a target; legacy aliases ride along; cibuildwheel's image list says what it builds."""
    from pipeline.profiles import linux_policies
    from pipeline.targets import LINUX_ARCHES

    known = catalogue()
    expected = {
        f"{entry['name']}_{arch}"
        for entry in linux_policies()
        for arch in entry["symbol_versions"]
        if arch in LINUX_ARCHES
    }
    assert expected and expected <= set(known)
    assert {"musllinux_1_1_x86_64", "musllinux_1_1_aarch64", "manylinux_2_5_x86_64", "manylinux_2_34_aarch64",
            "manylinux_2_17_ppc64le", "musllinux_1_2_armv7l", "win32"} <= set(known)  # fmt: skip
    assert get_target("manylinux_2_5_x86_64").legacy_tags == ("manylinux1_x86_64",)
    from pipeline.builders.backends.cibuildwheel_ids import cibw_image

    assert cibw_image(get_target("manylinux_2_17_aarch64")) == "manylinux2014"
    assert cibw_image(get_target("manylinux_2_26_x86_64")) is None  # no cibuildwheel image: verify only
    assert cibw_image(get_target("musllinux_1_2_aarch64-musl1.2.3")) == "musllinux_1_2"
    assert get_target("musllinux_1_1_x86_64").profile == "musl_1_2_5"
    assert get_target("musllinux_1_1_x86_64-musl1.2.3").profile == "musl_1_2_3"
    win32 = get_target("win32")
    assert win32.arch == "x86" and win32.profile == "windows_desktop_x86"
    names = list(known)
    assert (
        names.index("manylinux_2_5_x86_64")
        < names.index("manylinux_2_17_x86_64")
        < names.index("manylinux_2_28_x86_64")
    )  # older policies first: consumers pick the first target that accepts a tag


def test_targets_command_lists_every_level(run_cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run_cli("targets", "--json")
    assert code == 0
    names = {t["name"] for t in json.loads(out)["targets"]}
    assert {"musllinux_1_1_aarch64", "manylinux_2_39_s390x", "win32", "win_amd64-nanoserver"} <= names


def _recipe(tmp: Path, name: str, depends: list[str], kind: str = "sdist") -> object:
    filename = f"{name}-1.0.tar.gz" if kind == "sdist" else f"{name}-1.0-py3-none-any.whl"
    text = (
        f'name = "{name}"\ntargets = ["musllinux_1_2_x86_64", "win_amd64"]\npython = ["3.11", "3.12"]\n'
        f'depends = {json.dumps(depends)}\nexclude = ["win_amd64:3.12"]\n'
        f'[[source]]\nversion = "1.0"\nkind = "{kind}"\nfilename = "{filename}"\nsha256 = "{"c" * 64}"\n'
    )
    return parse_recipe(text, tmp / f"{name}.toml")


def test_plan_orders_dependencies_and_applies_excludes(tmp_path: Path) -> None:
    app = _recipe(tmp_path, "app", ["lib"])
    lib = _recipe(tmp_path, "lib", [])
    jobs = plan([app, lib])  # type: ignore[list-item]
    order = [j.recipe.name for j in jobs]
    assert order.index("lib") < order.index("app") and order == sorted(order, key=["lib", "app"].index)
    assert ("win_amd64", "3.12") not in {(j.target, j.python) for j in jobs}
    assert len(jobs) == 2 * 3
    only_musl = plan([app, lib], ["musllinux_*"])  # type: ignore[list-item]
    assert {j.target for j in only_musl} == {"musllinux_1_2_x86_64"}
    assert job_json(only_musl[0])["cibw_build_identifier"] == "cp311-musllinux_x86_64"


def test_wheel_source_recipe_is_one_job_per_target(tmp_path: Path) -> None:
    jobs = plan([_recipe(tmp_path, "purewheel", [], kind="wheel")])  # type: ignore[list-item]
    assert {j.python for j in jobs} == {ANY_PYTHON}


def test_dependency_cycle_and_unknown_dependency(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="cycle"):
        build_order([_recipe(tmp_path, "a", ["b"]), _recipe(tmp_path, "b", ["a"])])  # type: ignore[list-item]
    with pytest.raises(RecipeError, match="depends on 'zzz'"):
        build_order([_recipe(tmp_path, "a", ["zzz"])])  # type: ignore[list-item]


def test_cli_targets_and_plan_json(run_cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run_cli("targets", "--json")
    assert code == 0
    assert DESIGN_NAMES <= {t["name"] for t in json.loads(out)["targets"]}
    code, out, _ = run_cli("plan", "--json", "--target", "musllinux_1_2_x86_64")
    assert code == 0
    jobs = json.loads(out)["jobs"]
    assert jobs and all(j["target"] == "musllinux_1_2_x86_64" for j in jobs)
    code, _, err = run_cli("plan", "--target", "nonesuch")
    assert code == 2 and "unknown target 'nonesuch'" in err and len(err.strip().splitlines()) == 1
