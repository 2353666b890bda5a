"""The repair stage with the real auditwheel on a real wheel: MarkupSafe 2.1.5 compiled on this host (glibc
x86_64) from its pinned sdist, then repaired for targets it does and does not fit."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pipeline.builders.repair import RepairError, repair_wheel

MARKUPSAFE_WIN = (
    "MarkupSafe", "2.1.5", "MarkupSafe-2.1.5-cp311-cp311-win_amd64.whl",
    "2b7c57a4dfc4f16f7142221afe5ba4e093e09e728ca65c51f5620c9aaeb9a617",
)  # fmt: skip
MARKUPSAFE = (
    "MarkupSafe",
    "2.1.5",
    "MarkupSafe-2.1.5.tar.gz",
    "d283d37a890ba4c1ae73ffadf8046435c76e7bc2247bbb63c00bd1a709c6544b",
)


def _job(target: str, extra: str = ""):  # type: ignore[no-untyped-def]
    from pipeline.plan import Job
    from pipeline.recipe import parse_recipe

    project, version, filename, sha = MARKUPSAFE
    recipe = parse_recipe(
        f'name = "markupsafe"\ntargets = ["{target}"]\n'
        f'[[source]]\nversion = "{version}"\nkind = "sdist"\nproject = "{project}"\n'
        f'filename = "{filename}"\nsha256 = "{sha}"\n{extra}',
        Path("/nonexistent/recipes/markupsafe.toml"),
    )
    return Job(recipe, version, target, "3.11")


@pytest.fixture(scope="session")
def host_wheel(tmp_path_factory: pytest.TempPathFactory, pypi_file) -> Path:  # type: ignore[no-untyped-def]
    """An unrepaired linux_x86_64 wheel, compiled here from the pinned sdist (no index access while building)."""
    if platform.machine() != "x86_64" or sys.version_info[:2] != (3, 11):
        pytest.skip("needs an x86_64 host running CPython 3.11")
    sdist = pypi_file(*MARKUPSAFE)
    out = tmp_path_factory.mktemp("host-wheel")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(out),
            str(sdist),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    [wheel] = out.glob("*.whl")
    assert wheel.name.endswith("-linux_x86_64.whl")
    return wheel


def test_auditwheel_repairs_for_the_target_policy(host_wheel: Path, tmp_path: Path) -> None:
    result = repair_wheel(host_wheel, _job("manylinux_2_17_x86_64"), tmp_path / "out")
    assert result.tool == "auditwheel"
    assert (
        result.command is not None
        and result.command[result.command.index("--plat") + 1] == "manylinux_2_17_x86_64"
    )
    assert "manylinux_2_17_x86_64" in result.wheel.name and result.wheel.is_file()


def test_a_glibc_wheel_is_not_passed_off_as_musllinux(host_wheel: Path, tmp_path: Path) -> None:
    # This host's auditwheel cannot name a musllinux policy, so rewheel asks for `auto` and must then notice
    # that the result is a manylinux wheel, which musl's pip would never install.
    with pytest.raises(RepairError) as error:
        repair_wheel(host_wheel, _job("musllinux_1_2_x86_64"), tmp_path / "out")
    assert "does not install on musllinux_1_2_x86_64" in str(error.value)


def test_delvewheel_repairs_a_windows_wheel_with_the_recipe_options(pypi_file, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    wheel = pypi_file(*MARKUPSAFE_WIN)
    job = _job(
        "win_amd64", '[repair.delvewheel]\nno-dll = ["vcruntime140.dll"]\nexclude = ["msvcp140.dll"]\n'
    )
    result = repair_wheel(wheel, job, tmp_path / "out")
    assert result.tool == "delvewheel" and result.command is not None
    assert result.command[result.command.index("--exclude") + 1] == os.pathsep.join(
        ["vcruntime140.dll", "msvcp140.dll"]
    )
    assert result.wheel.name == "MarkupSafe-2.1.5-cp311-cp311-win_amd64.whl"
    assert result.wheel.parent == tmp_path / "out"
    with zipfile.ZipFile(result.wheel) as archive:
        assert "markupsafe/_speedups.cp311-win_amd64.pyd" in archive.namelist()
