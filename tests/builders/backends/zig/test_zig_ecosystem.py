"""The zig backend on what real packages use: C++ (zig's static libc++), meson-python (a generated cross
file), scikit-build-core/CMake (a generated toolchain file), in-tree backends, and the cross build's guards
(host config scripts hidden, host -L refused, pure-Python fallbacks refused, Debian sources pinned exactly).

Real sdists from the index, pinned by sha256, built through the CLI for musllinux_1_2_x86_64, repaired by the
real auditwheel, verified, and imported on the musl CPython runtime. A quick slice of
benchmarks/zig_ecosystem.py; builds are cached under the shared cache like every zig test."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, unavailable

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the zig backend runs on Linux hosts"),
]
TARGET = "musllinux_1_2_x86_64"


@pytest.fixture(scope="session")
def zig_ready() -> None:
    from pipeline.builders.backends.zig.target_sysconfig import find_build_python
    from pipeline.builders.backends.zig.toolchain import zig_executable
    from pipeline.errors import MissingTool

    try:
        zig_executable()
    except MissingTool as exc:
        unavailable(str(exc))
    if find_build_python("3.11") is None:
        unavailable("no CPython 3.11 with headers for the zig backend")


def _build(recipe: str, wheelhouse: Path, rewheel_exe: list[str], *extra: str) -> dict[str, object]:
    result = subprocess.run(
        [*rewheel_exe, "build", str(REPO / "recipes" / f"{recipe}.toml"), "--backend", "zig",
         "--target", TARGET, "--python", "3.11", "--wheelhouse", str(wheelhouse), "--json", *extra],
        capture_output=True, text=True,
    )  # fmt: skip
    summary = json.loads(result.stdout)
    (job,) = summary["jobs"]
    assert job["ok"], f"{recipe}: {job['stage']}: {job['message']}\n{result.stderr[-3000:]}"
    return job


def _needed(wheel: Path) -> dict[str, list[str]]:
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.elffile import ELFFile

    found = {}
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.endswith(".so"):
                elf = ELFFile(io.BytesIO(archive.read(name)))
                section = next(s for s in elf.iter_sections() if isinstance(s, DynamicSection))
                found[name] = [t.needed for t in section.iter_tags() if t.entry.d_tag == "DT_NEEDED"]
    return found


@pytest.fixture(scope="session")
def ecosystem_wheelhouse(tmp_path_factory: pytest.TempPathFactory, runtime_env, zig_ready) -> Path:  # type: ignore[no-untyped-def]
    return tmp_path_factory.mktemp("zig-ecosystem")


def test_cxx_extension_on_musl_links_libcxx_statically_and_imports(
    ecosystem_wheelhouse: Path, rewheel_exe: list[str], musl_dynamic
) -> None:  # type: ignore[no-untyped-def]
    """ujson compiles its bundled double-conversion (.cc) with zig c++; the wheel needs only musl's libc."""
    job = _build("ujson", ecosystem_wheelhouse, rewheel_exe)
    (wheel,) = [Path(w) for w in job["wheels"]]  # type: ignore[union-attr]
    assert wheel.name == "ujson-5.10.0-cp311-cp311-musllinux_1_2_x86_64.whl"
    assert _needed(wheel) == {"ujson.cpython-311-x86_64-linux-musl.so": ["libc.musl-x86_64.so.1"]}
    (smoke,) = job["smoke"]  # type: ignore[misc]
    assert smoke["status"] == "passed" and smoke["imported"] == ["ujson"], smoke


def test_meson_python_builds_through_a_cross_file(
    ecosystem_wheelhouse: Path, rewheel_exe: list[str], musl_dynamic
) -> None:  # type: ignore[no-untyped-def]
    """contourpy (meson-python, C++ with pybind11) for musl x86_64: built, repaired, verified, and imported on
    the musl CPython next to the pinned numpy wheel its recipe's [test].requires names; the recipe's command
    computes a contour there."""
    job = _build("contourpy", ecosystem_wheelhouse, rewheel_exe)
    (wheel,) = [Path(w) for w in job["wheels"]]  # type: ignore[union-attr]
    assert wheel.name == "contourpy-1.3.1-cp311-cp311-musllinux_1_2_x86_64.whl"
    module = "contourpy/_contourpy.cpython-311-x86_64-linux-musl.so"
    assert _needed(wheel) == {module: ["libc.musl-x86_64.so.1"]}
    (smoke,) = job["smoke"]  # type: ignore[misc]
    assert smoke["status"] == "passed", smoke
    assert smoke["imported"] == ["contourpy._contourpy", "contourpy"], smoke


def test_scikit_build_core_builds_through_the_toolchain_file(
    ecosystem_wheelhouse: Path, rewheel_exe: list[str], musl_dynamic
) -> None:  # type: ignore[no-untyped-def]
    """spglib (scikit-build-core + CMake, C): its library built static and linked into the extension (the
    recipe's cmake.define), so the wheel holds one module needing only musl's libc; imported with numpy and a
    space group found on the musl CPython."""
    job = _build("spglib", ecosystem_wheelhouse, rewheel_exe)
    (wheel,) = [Path(w) for w in job["wheels"]]  # type: ignore[union-attr]
    assert wheel.name.startswith("spglib-2.5.0-cp311-cp311-musllinux_1_2_x86_64"), wheel.name
    assert _needed(wheel) == {"spglib/_spglib.so": ["libc.musl-x86_64.so.1"]}
    (smoke,) = job["smoke"]  # type: ignore[misc]
    assert smoke["status"] == "passed" and "spglib._spglib" in smoke["imported"], smoke


def test_cmake_run_by_setup_py_uses_the_toolchain_file(
    ecosystem_wheelhouse: Path, rewheel_exe: list[str], musl_dynamic
) -> None:  # type: ignore[no-untyped-def]
    """pybase64's setup.py runs cmake for its bundled libbase64: CMAKE_TOOLCHAIN_FILE makes that a zig cross
    build; the wheel imports and round-trips on the musl CPython."""
    job = _build("pybase64", ecosystem_wheelhouse, rewheel_exe)
    (wheel,) = [Path(w) for w in job["wheels"]]  # type: ignore[union-attr]
    assert wheel.name.startswith("pybase64-1.4.0-cp311-cp311-musllinux_1_2_x86_64"), wheel.name
    assert all(libs == ["libc.musl-x86_64.so.1"] for libs in _needed(wheel).values()), _needed(wheel)
    (smoke,) = job["smoke"]  # type: ignore[misc]
    assert smoke["status"] == "passed" and "pybase64._pybase64" in smoke["imported"], smoke


# ------------------------------------------------------------------------------------------ the guards


def test_host_library_folder_is_refused_with_one_line(tmp_path: Path, zig_ready) -> None:  # type: ignore[no-untyped-def]
    from pipeline.builders.backends.zig.toolchain import write_toolchain

    toolchain = write_toolchain(TARGET, tmp_path / "bin")
    result = subprocess.run(
        [str(toolchain.cc), "-shared", "-o", str(tmp_path / "x.so"), "-L/usr/lib/x86_64-linux-gnu", "-lpq"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"rewheel: error: host library folder -L/usr/lib/x86_64-linux-gnu in a cross build for {TARGET}: the "
        "host's libraries cannot link into a target binary (a host *-config script or setup.py put it there; "
        "give the library as a recipe [[native]] entry)"
    ]


def test_host_config_scripts_are_hidden_target_ones_kept(tmp_path: Path) -> None:
    from pipeline.builders.backends.zig.host_tools import hide_host_config_scripts

    host, native = tmp_path / "host-bin", tmp_path / "native-bin"
    for folder, name in (
        (host, "xml2-config"),
        (host, "pg_config"),
        (host, "pkg-config"),
        (native, "xslt-config"),
    ):
        folder.mkdir(exist_ok=True)
        (folder / name).write_text("#!/bin/sh\necho -L/usr/lib/x86_64-linux-gnu\n")
        (folder / name).chmod(0o755)
    shadows = hide_host_config_scripts(f"{native}:{host}", tmp_path / "hidden", TARGET, keep=[native])
    assert sorted(p.name for p in shadows.iterdir()) == ["pg_config", "xml2-config"]
    env = {"PATH": f"{native}:{shadows}:{host}:/usr/bin:/bin"}
    hidden = subprocess.run(["pg_config", "--libdir"], env=env, capture_output=True, text=True)
    assert hidden.returncode == 1 and "the host's pg_config is hidden in a cross build" in hidden.stderr
    assert subprocess.run(["xslt-config"], env=env, capture_output=True, text=True).returncode == 0


def test_pure_python_fallback_is_an_error_naming_it(tmp_path: Path, zig_ready) -> None:  # type: ignore[no-untyped-def]
    """A setup.py that ships C but installs no extension (what wrapt and PyYAML do when their build fails
    quietly) no longer yields a "successful" pure wheel."""
    from pipeline.builders.backends import BuildRequest
    from pipeline.builders.backends.zig import ZigBackend
    from pipeline.errors import RewheelError
    from pipeline.plan import Job
    from pipeline.recipe import load_recipe

    tree = tmp_path / "src" / "fallback-1.0"
    (tree / "fallback").mkdir(parents=True)
    (tree / "fallback" / "__init__.py").write_text("")
    (tree / "fallback" / "_speedups.c").write_text("/* optional speedups */\n")
    (tree / "setup.py").write_text(
        "from setuptools import setup\nsetup(name='fallback', version='1.0', packages=['fallback'])\n"
    )
    recipe_file = tmp_path / "fallback.toml"
    recipe_file.write_text(
        f'name = "fallback"\ntargets = ["{TARGET}"]\npython = ["3.11"]\n[[source]]\nversion = "1.0"\nkind = "sdist"\n'
        f'filename = "fallback-1.0.tar.gz"\nsha256 = "{"0" * 64}"\nurl = "http://127.0.0.1:9/fallback-1.0.tar.gz"\n'
    )
    recipe = load_recipe(recipe_file)
    job = Job(recipe, "1.0", TARGET, "3.11")
    request = BuildRequest(job, tree, tmp_path / "none.tar.gz", tmp_path / "out", tmp_path / "work")
    with pytest.raises(RewheelError) as info:
        ZigBackend().build(request)
    message = str(info.value)
    assert "compiles sources (fallback/_speedups.c) but the wheel holds no extension" in message
    assert "WRAPT_INSTALL_EXTENSIONS" in message and "PYYAML_FORCE_LIBYAML" in message


def test_debian_source_is_the_pinned_pool_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """libyaml 0.2.5's orig tarball comes from the pool by its exact name; a version no archive serves
    is one line."""
    from pipeline.builders.backends.zig.native_libraries import fetch_native_source
    from pipeline.errors import FetchError
    from pipeline.recipe import NativeLibrary

    monkeypatch.setenv("REWHEEL_CACHE_DIR", str(tmp_path / "cache"))
    pinned = NativeLibrary(
        name="libyaml", version="0.2.5", debian_source="libyaml", filename="libyaml_0.2.5.orig.tar.gz",
        sha256="fa240dbf262be053f3898006d502d514936c818e422afdcf33921c63bed9bf2e",
    )  # fmt: skip
    path = fetch_native_source(pinned)
    with tarfile.open(path) as archive:
        assert any(n.endswith("include/yaml.h") for n in archive.getnames())
    gone = pinned.model_copy(update={"version": "0.2.4", "filename": "libyaml_0.2.4.orig.tar.gz"})
    with pytest.raises(FetchError) as info:
        fetch_native_source(gone)
    assert "the pinned libyaml_0.2.4.orig.tar.gz (Debian source libyaml) is in none of the" in str(info.value)
    assert "\n" not in str(info.value)


def test_pdm_backend_running_setuptools_is_a_setuptools_build() -> None:
    """editdistance 0.8.1's pdm-backend runs setuptools (`run-setuptools = true`): built like setuptools;
    pdm-backend without it stays refused with one line."""
    from pipeline.source_inspect import (
        SourceListing,
        build_system_kind,
        cross_build_obstacle,
    )

    pyproject = (
        '[build-system]\nrequires = ["pdm-backend", "cython"]\nbuild-backend = "pdm.backend"\n'
        "[tool.pdm.build]\nrun-setuptools = true\n"
    )
    runs = SourceListing(names=["pyproject.toml", "src/x/_x.cpp"], config={"pyproject.toml": pyproject})
    assert build_system_kind(runs) == "setuptools" and cross_build_obstacle(runs) is None
    plain = SourceListing(
        names=runs.names, config={"pyproject.toml": pyproject.replace("run-setuptools = true", "")}
    )
    obstacle = cross_build_obstacle(plain)
    assert obstacle is not None and obstacle.startswith("uses the build backend 'pdm.backend'")


def test_smoke_requirements_are_fetched_for_the_targets_platforms() -> None:
    from pipeline.targets import get_target

    assert get_target("musllinux_1_2_aarch64").compatible_platforms() == [
        "musllinux_1_2_aarch64", "musllinux_1_1_aarch64", "musllinux_1_0_aarch64",
    ]  # fmt: skip
    glibc = get_target("manylinux_2_17_aarch64").compatible_platforms()
    assert (
        glibc[:2] == ["manylinux_2_17_aarch64", "manylinux2014_aarch64"] and glibc[-1] == "manylinux1_aarch64"
    )
