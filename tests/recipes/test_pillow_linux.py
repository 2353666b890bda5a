"""Pillow 10.4.0 for Linux targets with the zig backend (issue 10, Linux half): zlib (a hand-written ./configure,
build kind "configure") and libjpeg-turbo (CMake, build kind "cmake") cross-built for the target from Debian's
orig tarballs, every other codec disabled, platform guessing off so nothing of the host's /usr leaks in; then
the real `rewheel build` (auditwheel repair, verify, smoke with a JPEG/PNG round trip on the target runtime).

The recipe is test-local (recipes/pillow.toml belongs to the Windows half until the lead merges the Linux
fragment); its pinned values are the fragment's. Native prefixes, the build venv and the pillow sdist are
cached under the shared cache, so a warm run only re-runs setuptools (about a minute for pillow)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from conftest import IN_CI, need_toolset, unavailable

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the zig backend runs on Linux hosts"
)

PILLOW = (
    "pillow",
    "10.4.0",
    "pillow-10.4.0.tar.gz",
    "166c1cd4d24309b30d61f79f4a9114b7b2313d7450912277855ff5dfd7cd4a06",
)
# Disabled on Linux: everything but zlib and jpeg (the two Pillow requires) and lcms (the recipe's shared [test]
# imports PIL._imagingcms), whose libraries are built here.
DISABLED = ["tiff", "freetype", "raqm", "webp", "webpmux", "jpeg2000", "imagequant", "xcb"]
ROUND_TRIP = (
    "import io; from PIL import Image, features; "
    "assert features.check('jpg') and features.check('zlib') and features.check('littlecms2'); "
    "assert not features.check('freetype2') and not features.check('webp'); "
    "im = Image.new('RGB', (64, 48), (200, 10, 10)); "
    "j = io.BytesIO(); im.save(j, 'JPEG', quality=90); p = io.BytesIO(); im.save(p, 'PNG'); "
    "a = Image.open(io.BytesIO(j.getvalue())); b = Image.open(io.BytesIO(p.getvalue())); "
    "assert a.format == 'JPEG' and a.size == (64, 48) and a.convert('RGB').getpixel((10, 10))[0] > 180; "
    "assert b.format == 'PNG' and b.tobytes() == im.tobytes(); print('round trip ok')"
)
NATIVE_TOML = """
[[native]]
name = "zlib"
version = "1.2.13"
debian-source = "zlib"
filename = "zlib_1.2.13.dfsg.orig.tar.bz2"
sha256 = "71feb7947e3c00ef125f83b79a4e529bde31171e5babe48b391f06758d1ab0a1"
build = "configure"
configure-args = ["--static"]

[[native]]
name = "libjpeg-turbo"
version = "2.1.5"
debian-source = "libjpeg-turbo"
filename = "libjpeg-turbo_2.1.5.orig.tar.gz"
sha256 = "254f3642b04e309fee775123133c6464181addc150499561020312ec61c1bf7c"
build = "cmake"
configure-args = ["-DENABLE_SHARED=OFF", "-DENABLE_STATIC=ON", "-DWITH_TURBOJPEG=OFF", "-DWITH_SIMD=OFF", "-DWITH_JAVA=OFF"]

[[native]]
name = "lcms2"
version = "2.14"
debian-source = "lcms2"
filename = "lcms2_2.14.orig.tar.gz"
sha256 = "28474ea6f6591c4d4cee972123587001a4e6e353412a41b3e9e82219818d5740"
build = "autotools"
configure-args = ["--without-jpeg", "--without-tiff", "--without-zlib"]
"""


def _recipe_text() -> str:
    disabled = ", ".join(f'{name} = "disable"' for name in DISABLED)
    test_command = json.dumps(f'python -c "{ROUND_TRIP}"')
    return f"""name = "pillow"
targets = ["musllinux_1_2_x86_64", "musllinux_1_2_aarch64", "manylinux_2_17_aarch64"]
python = ["3.11"]

[[source]]
version = "{PILLOW[1]}"
kind = "sdist"
project = "{PILLOW[0]}"
filename = "{PILLOW[2]}"
sha256 = "{PILLOW[3]}"

[build]
# The Windows half's base settings: the Linux section below must override them (raqm/fribidi) to build.
config-settings = {{ raqm = ["enable", "vendor"], fribidi = "vendor", imagequant = "disable" }}

[build.target."*linux_*"]
config-settings = {{ platform-guessing = "disable", fribidi = "disable", {disabled} }}
{NATIVE_TOML}
[test]
imports = ["PIL.Image", "PIL._imaging", "PIL._imagingcms"]
command = {test_command}
"""


@pytest.fixture(scope="module")
def recipe_file(tmp_path_factory: pytest.TempPathFactory, pypi_file) -> Path:  # type: ignore[no-untyped-def]
    pypi_file(*PILLOW)
    path = tmp_path_factory.mktemp("recipes") / "pillow.toml"
    path.write_text(_recipe_text(), encoding="utf-8")
    return path


def _natives(recipe_file: Path):  # type: ignore[no-untyped-def]
    from pipeline.recipe import load_recipe

    zlib, jpeg, lcms2 = load_recipe(recipe_file).native
    return zlib, jpeg, lcms2


def _zig_or_skip() -> None:
    # libjpeg-turbo is a CMake project; zlib and lcms2 need make.
    need_toolset("cmake")
    try:
        from pipeline.builders.backends.zig.toolchain import zig_executable

        zig_executable()
    except Exception as exc:
        unavailable(str(exc))


# ------------------------------------------------------------------------------------------- fast checks


def test_linux_config_settings_override_the_windows_ones(recipe_file: Path) -> None:
    from pipeline.recipe import load_recipe

    settings = load_recipe(recipe_file).build.for_target("musllinux_1_2_aarch64").config_settings
    assert settings["platform-guessing"] == "disable"
    assert settings["raqm"] == "disable" and settings["fribidi"] == "disable"
    assert all(settings[name] == "disable" for name in DISABLED)


def test_configure_kind_runs_the_script_without_autoconf_options(recipe_file: Path, tmp_path: Path) -> None:
    from pipeline.builders.backends.zig.native_libraries import _build_commands

    zlib, _, _ = _natives(recipe_file)
    (configure, _), (make, _), (install, _) = _build_commands(
        zlib, "musllinux_1_2_aarch64", tmp_path, tmp_path, tmp_path / "stage", tmp_path / "bin"
    )
    # zlib's configure rejects --host / --disable-shared; CC/AR/RANLIB come from the environment.
    assert configure == ["./configure", f"--prefix={tmp_path / 'stage'}", "--static"]
    assert make == ["make", "-j2"] and install == ["make", "install"]


def test_cmake_kind_is_a_cross_build_that_cannot_see_host_libraries(
    recipe_file: Path, tmp_path: Path
) -> None:
    from pipeline.builders.backends.zig.native_libraries import _build_commands

    _, jpeg, _ = _natives(recipe_file)
    (configure, _), (build, _), (install, _) = _build_commands(
        jpeg, "manylinux_2_17_aarch64", tmp_path / "src", tmp_path, tmp_path / "stage", tmp_path / "bin"
    )
    assert configure[:5] == ["cmake", "-S", str(tmp_path / "src"), "-B", str(tmp_path / "cmake-build")]
    for flag in (
        "-DCMAKE_SYSTEM_NAME=Linux",  # makes CMake treat it as a cross build
        "-DCMAKE_SYSTEM_PROCESSOR=aarch64",
        f"-DCMAKE_C_COMPILER={tmp_path / 'bin' / 'cc'}",
        f"-DCMAKE_INSTALL_LIBDIR={tmp_path / 'stage' / 'lib'}",
        "-DBUILD_SHARED_LIBS=OFF",
        "-DCMAKE_FIND_ROOT_PATH_MODE_LIBRARY=ONLY",
        "-DCMAKE_FIND_ROOT_PATH_MODE_INCLUDE=ONLY",
        "-DWITH_SIMD=OFF",
    ):
        assert flag in configure
    assert build[:2] == ["cmake", "--build"] and install[:2] == ["cmake", "--install"]


def test_pillow_in_tree_backend_is_accepted_as_setuptools(pypi_file) -> None:  # type: ignore[no-untyped-def]
    from pipeline.source_inspect import _build_backend, cross_build_obstacle, list_source

    listing = list_source(pypi_file(*PILLOW))
    assert _build_backend(listing).startswith("setuptools (in-tree wrapper")
    # setup.py sets `extension.language = "c++"` only for its fuzzing build: not a C++ extension.
    assert cross_build_obstacle(listing, musl=True) is None


# -------------------------------------------------------------------------------------------- real builds


@pytest.mark.slow
def test_zlib_and_libjpeg_are_built_static_for_the_target_and_cached(recipe_file: Path) -> None:
    from helpers.elf import ar_members_machines
    from pipeline.builders.backends.zig.native_libraries import build_native_library

    _zig_or_skip()
    target = "musllinux_1_2_x86_64"
    for library, archive_name, header in zip(
        _natives(recipe_file),
        ("libz.a", "libjpeg.a", "liblcms2.a"),
        ("zlib.h", "jpeglib.h", "lcms2.h"),
        strict=True,
    ):
        started = time.monotonic()
        prefix = build_native_library(library, target)
        first = time.monotonic() - started
        assert (prefix.include_dir / header).is_file()
        (archive,) = [d / archive_name for d in prefix.lib_dirs if (d / archive_name).is_file()]
        assert ar_members_machines(archive) == {"EM_X86_64"}
        assert not list(prefix.prefix.rglob("*.so*")), "static only: nothing for auditwheel to bundle"
        pc = next(prefix.prefix.rglob("*.pc")).read_text()
        assert f"prefix={prefix.prefix}" in pc and "/.build-" not in pc  # staging path rewritten
        built_at = archive.stat().st_mtime_ns
        assert build_native_library(library, target).prefix == prefix.prefix
        assert archive.stat().st_mtime_ns == built_at, "a built prefix is reused, not rebuilt"
        print(f"\n{library.name} for {target}: {first:.1f} s first call")


def _build(recipe_file: Path, target: str, wheelhouse: Path, rewheel_exe: list[str]) -> dict:  # type: ignore[type-arg]
    started = time.monotonic()
    result = subprocess.run(
        [*rewheel_exe, "build", str(recipe_file), "--backend", "zig", "--target", target, "--python", "3.11",
         "--wheelhouse", str(wheelhouse), "--json", "--force"],
        capture_output=True, text=True,
    )  # fmt: skip
    print(f"\nrewheel build pillow for {target}: {time.monotonic() - started:.1f} s")
    assert result.stdout.strip(), result.stderr[-3000:]
    (job,) = json.loads(result.stdout)["jobs"]
    assert job["status"] == "built", (job.get("message"), result.stderr[-3000:])
    return job


def _check_wheel(wheel: Path, machine: str) -> None:
    from elftools.elf.elffile import ELFFile

    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        imaging = next(n for n in names if n.startswith("PIL/_imaging.") and n.endswith(".so"))
        elf = ELFFile(io.BytesIO(archive.read(imaging)))
        assert elf.header["e_machine"] == machine
        dynamic = elf.get_section_by_name(".dynamic")
        needed = [t.needed for t in dynamic.iter_tags() if t.entry.d_tag == "DT_NEEDED"]
        defined = {
            s.name for s in elf.get_section_by_name(".dynsym").iter_symbols() if s["st_shndx"] != "SHN_UNDEF"
        }
    # zlib and libjpeg are inside _imaging (static): no libjpeg/libz NEEDED, nothing bundled in pillow.libs.
    assert not [n for n in needed if "jpeg" in n or "libz" in n], needed
    assert not [n for n in names if ".libs/" in n], "nothing for auditwheel to bundle"
    assert {"jpeg_read_header", "deflate"} <= defined
    # Disabled codecs' extensions are absent.
    extensions = [n for n in names if n.endswith(".so")]
    assert not [n for n in extensions if "_imagingft" in n or "_webp" in n], extensions
    assert [n for n in extensions if "_imagingcms" in n], extensions


@pytest.mark.slow
def test_pillow_musllinux_x86_64_builds_without_host_libraries_and_round_trips(  # type: ignore[no-untyped-def]
    recipe_file: Path, tmp_path: Path, pypi_file
) -> None:
    """The zig backend's own log proves where zlib/libjpeg came from; then the real auditwheel, verify and the
    recipe's round trip on the musl CPython (the same stages `rewheel build` runs, see the aarch64 test)."""
    from pipeline.builders.backends import BuildRequest
    from pipeline.builders.backends.zig import ZigBackend
    from pipeline.builders.backends.zig.native_libraries import prefix_for
    from pipeline.errors import RewheelError
    from pipeline.plan import Job
    from pipeline.recipe import load_recipe
    from pipeline.smoke import smoke_wheel
    from pipeline.unpack import unpack
    from pipeline.verify import verify_wheel

    _zig_or_skip()
    target = "musllinux_1_2_x86_64"
    recipe = load_recipe(recipe_file)
    job = Job(recipe, PILLOW[1], target, "3.11")
    reason = ZigBackend().unavailable_reason(job)
    if reason:
        unavailable(reason)
    sdist = pypi_file(*PILLOW)
    tree = next(unpack(sdist, tmp_path / "src").iterdir())
    started = time.monotonic()
    result = ZigBackend().build(
        BuildRequest(
            job=job, source_tree=tree, source_file=sdist, out_dir=tmp_path / "out", work_dir=tmp_path / "w"
        )
    )
    seconds = time.monotonic() - started
    log = result.log
    # Pillow's own summary: the two required codecs found, the disabled ones not.
    assert "--- JPEG support available" in log and "--- ZLIB (PNG/ZIP) support available" in log, log[-3000:]
    assert "--- LITTLECMS2 support available" in log
    assert "*** LIBTIFF support not available" in log and "*** FREETYPE2 support not available" in log
    # Only the target prefixes were searched: no host include/library folder reached a compiler command.
    host_dirs = re.findall(r"-[IL]\s*/(?:usr/(?:local/)?)?(?:include|lib)\S*", log)
    assert not host_dirs, host_dirs
    for library in recipe.native:
        assert f"-I{prefix_for(library, target) / 'include'}" in log, library.name

    repaired = tmp_path / "repaired"
    repair = subprocess.run(
        [sys.executable, "-m", "auditwheel", "repair", "--plat", "auto", "-w", str(repaired), str(result.wheels[0])],
        capture_output=True, text=True, env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"},
    )  # fmt: skip
    assert repair.returncode == 0, repair.stderr[-2000:]
    (wheel,) = repaired.glob("*.whl")
    assert wheel.name == "pillow-10.4.0-cp311-cp311-musllinux_1_2_x86_64.whl"
    _check_wheel(wheel, "EM_X86_64")
    report = verify_wheel(wheel, target)
    assert report.ok, report.to_json()
    print(f"\npillow zig build for {target}: {seconds:.1f} s, {wheel.stat().st_size} bytes")

    try:
        smoke = smoke_wheel(wheel, target, imports=recipe.test.imports, command=recipe.test.command)
    except RewheelError as exc:  # the musl runtime could not be built here
        unavailable(f"pillow musllinux wheel built and verified, but not smoked: {exc}")
    # The round trip is the recipe's [test] command: a failure on the runtime fails the test; no musl CPython
    # (cannot-host, or the runtime could not be built: error) is a missing tool.
    assert smoke.status != "failed", smoke.to_json()
    if smoke.status != "passed":
        unavailable(f"pillow musllinux wheel built and verified, but not smoked: {smoke.message}")


@pytest.mark.slow
def test_rewheel_build_pillow_manylinux_aarch64_when_cheap(
    recipe_file: Path, tmp_path: Path, rewheel_exe
) -> None:  # type: ignore[no-untyped-def]
    """aarch64 (glibc 2.17) with the round trip under qemu. CI always runs it (a few minutes on a cold cache:
    zlib, libjpeg-turbo and lcms2 cross-built for aarch64); elsewhere it runs when those native libraries are
    already cached or REWHEEL_PILLOW_AARCH64=1, so a local run pays only for the one musl target."""
    from pipeline.builders.backends.zig.native_libraries import prefix_for

    _zig_or_skip()
    target = "manylinux_2_17_aarch64"
    cached = all((prefix_for(lib, target) / ".rewheel-complete").is_file() for lib in _natives(recipe_file))
    if not cached and not IN_CI and os.environ.get("REWHEEL_PILLOW_AARCH64") != "1":
        pytest.skip("aarch64 native libraries not cached; set REWHEEL_PILLOW_AARCH64=1 to build them")
    job = _build(recipe_file, target, tmp_path, rewheel_exe)
    (wheel,) = [Path(w) for w in job["wheels"]]
    assert wheel.name == "pillow-10.4.0-cp311-cp311-manylinux2014_aarch64.manylinux_2_17_aarch64.whl"
    _check_wheel(wheel, "EM_AARCH64")
    smoke = job["smoke"][0] if job["smoke"] else {"status": "cannot-host"}
    if smoke["status"] == "cannot-host":
        unavailable(f"no aarch64 runtime: {smoke.get('message')}")
    assert smoke["status"] == "passed", smoke
