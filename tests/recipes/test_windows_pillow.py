"""Pillow for Windows built on Linux with the zig backend: the desktop wheel (win_amd64, with the Win32 display
code) and the Nano Server wheel (the recipe's patch, no USER32/GDI32), both with zlib, libjpeg-turbo and lcms2
built for x86_64-windows-gnu as static libraries (the same [[native]] entries as the Linux targets).

Each wheel is built once per session through `rewheel build` (fetch, patch, zig, delvewheel, verify, smoke under
wine with the recipe's PNG + JPEG round trip); the native libraries are built once for both (one zig triple).
The contrast with upstream's wheel (which the nanoserver profile and runtime refuse) is here too."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pefile
import pytest

from conftest import REPO, ensure_runtime, need_toolset, zig_build_job

RECIPE = REPO / "recipes" / "pillow.toml"
UPSTREAM_PILLOW = (
    "pillow",
    "10.4.0",
    "pillow-10.4.0-cp311-cp311-win_amd64.whl",
    "cbed61494057c0f83b83eb3a310f0bf774b09513307c434d4366ed64f4128a91",
)
IMAGING = "PIL/_imaging.cp311-win_amd64.pyd"
IMAGINGCMS = "PIL/_imagingcms.cp311-win_amd64.pyd"
WINDOWING = {"USER32.DLL", "GDI32.DLL"}


@pytest.fixture(scope="session")
def zig_windows_pillow(zig_windows):  # type: ignore[no-untyped-def]
    need_toolset("cmake")  # libjpeg-turbo (CMake) and make for zlib/lcms2
    ensure_runtime("windows-cpython-3.11-amd64-nanoserver")
    return True


@pytest.fixture(scope="session")
def pillow_nanoserver(zig_windows_pillow, tmp_path_factory) -> dict:  # type: ignore[no-untyped-def,type-arg]
    return zig_build_job(RECIPE, "win_amd64-nanoserver", tmp_path_factory.mktemp("wh-pillow-nano"))


@pytest.fixture(scope="session")
def pillow_desktop(zig_windows_pillow, pillow_nanoserver, tmp_path_factory) -> dict:  # type: ignore[no-untyped-def,type-arg]
    # After the nanoserver build: it reuses the native libraries that build made (one zig triple).
    return zig_build_job(RECIPE, "win_amd64", tmp_path_factory.mktemp("wh-pillow-desktop"))


def _imports(wheel: Path, member: str) -> dict[str, set[str]]:
    with zipfile.ZipFile(wheel) as archive:
        pe = pefile.PE(data=archive.read(member))
    return {
        entry.dll.decode().upper(): {i.name.decode() for i in entry.imports if i.name}
        for entry in getattr(pe, "DIRECTORY_ENTRY_IMPORT", [])
    }


def _smoke(run_cli, wheel: str, target: str, command: str) -> tuple[int, dict]:  # type: ignore[no-untyped-def,type-arg]
    # PIL._imagingtk needs tkinter, which the embeddable CPython lacks: name the module to import.
    code, out, err = run_cli(
        "smoke", "--json", wheel, "--target", target, "--import", "PIL.Image", "--command", command
    )
    assert out, err
    (result,) = json.loads(out)["results"]
    return code, result


# ----------------------------------------------------------------------------------------------- no build


def test_lcms2_is_static_on_windows_and_the_libraries_are_shared_across_windows_targets() -> None:
    from pipeline.builders.backends.zig.native_libraries import _build_commands, linkage_for, prefix_for
    from pipeline.recipe import load_recipe

    natives = {n.name: n for n in load_recipe(RECIPE).native}
    lcms2 = natives["lcms2"]
    assert lcms2.linkage == "static" and linkage_for(lcms2, "win_amd64") == "static"
    (configure, _), *_ = _build_commands(lcms2, "win_amd64", Path("/s"), Path("/w"), Path("/p"), Path("/b"))
    assert "--disable-shared" in configure and "--enable-static" in configure
    # win_amd64, -servercore and -nanoserver compile with one triple: one cached build of each library.
    for library in natives.values():
        paths = {
            prefix_for(library, t) for t in ("win_amd64", "win_amd64-servercore", "win_amd64-nanoserver")
        }
        assert len(paths) == 1 and "x86_64-windows-gnu" in str(paths.pop())
        assert prefix_for(library, "win_amd64") != prefix_for(library, "win_arm64")


def test_autotools_libraries_stay_dlls_on_windows_unless_the_recipe_says_static() -> None:
    from pipeline.builders.backends.zig.native_libraries import linkage_for, prefix_for
    from pipeline.recipe import load_recipe

    (libffi,) = load_recipe(REPO / "recipes" / "cffi.toml").native
    assert libffi.linkage is None
    assert (
        linkage_for(libffi, "win_amd64") == "shared"
        and linkage_for(libffi, "musllinux_1_2_x86_64") == "static"
    )
    static = libffi.model_copy(update={"linkage": "static"})
    assert prefix_for(static, "win_amd64") != prefix_for(libffi, "win_amd64")  # linkage is part of the key


def test_zig_windows_options_replace_cibuildwheels_and_keep_the_library_flags() -> None:
    from pipeline.recipe import load_recipe

    build = load_recipe(RECIPE).build
    zig = build.for_target("win_amd64-nanoserver", backend="zig")
    assert zig.config_settings["raqm"] == "disable" and zig.config_settings["platform-guessing"] == "disable"
    assert zig.environment["INCLUDE"] == "" and "-luser32" in zig.environment["LDFLAGS"]
    assert zig.disable_features == ["win32-display"]
    # cibuildwheel's MSVC build keeps upstream's settings (raqm vendored, its own INCLUDE/LIB).
    msvc = build.for_target("win_amd64-nanoserver", backend="cibuildwheel")
    assert msvc.config_settings["raqm"] == ["enable", "vendor"] and msvc.environment["INCLUDE"].startswith(
        "C:"
    )
    assert build.for_target("win_amd64-nanoserver") == msvc


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('linkage = "static"', 'linkage = "dll"', "native.2.linkage"),
        ('[build.backend.zig.target."win_*"]', '[build.backend.msvc.target."win_*"]', "build.backend"),
        ('[build.backend.zig.target."win_*"]', '[build.backend.zig.target."solaris_*"]', "solaris_*"),
    ],
)
def test_bad_linkage_or_backend_section_is_one_line_exit_2(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    import jsonschema

    from pipeline import toml

    text = RECIPE.read_text(encoding="utf-8")
    assert old in text
    shutil.copytree(REPO / "patches" / "pillow", tmp_path / "patches" / "pillow")
    broken = tmp_path / "recipes" / "pillow.toml"
    broken.parent.mkdir()
    broken.write_text(text.replace(old, new, 1), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "recipes", "check", str(broken)], capture_output=True, text=True
    )
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in result.stderr, result.stderr
    schema = json.loads((REPO / "pipeline" / "resources" / "recipe.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(toml.loads(text), schema)  # the shipped schema knows both keys
    if "solaris" not in new:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(toml.loads(broken.read_text(encoding="utf-8")), schema)


# --------------------------------------------------------------------------------------------- real builds


@pytest.mark.slow
def test_nanoserver_wheel_verifies_clean_and_round_trips_png_and_jpeg_under_wine(
    pillow_nanoserver, run_cli
) -> None:  # type: ignore[no-untyped-def]
    job = pillow_nanoserver
    wheel = Path(job["wheels"][0])
    assert wheel.name == "pillow-10.4.0-cp311-cp311-win_amd64.whl" and job["backend"] == "zig"
    # The build's own smoke: the recipe's imports and its PNG + JPEG round trip, on the runtime without
    # USER32/GDI32 (wine with both disabled).
    (smoke,) = job["smoke"]
    assert smoke["status"] == "passed", smoke
    assert smoke["runtime"] == "windows-cpython-3.11-amd64-nanoserver"
    code, out, err = run_cli("verify", "--json", str(wheel), "--target", "win_amd64-nanoserver")
    assert code == 0, (out, err)
    for member in (IMAGING, IMAGINGCMS):
        assert not WINDOWING & set(_imports(wheel, member)), member
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.lower().endswith(".dll")], "zlib, libjpeg and lcms2 are linked in"


@pytest.mark.slow
def test_upstream_fails_where_rewheels_nanoserver_wheel_imports(
    pillow_nanoserver, run_cli, pypi_file
) -> None:  # type: ignore[no-untyped-def]
    upstream = pypi_file(*UPSTREAM_PILLOW)
    code, out, _ = run_cli("verify", "--json", str(upstream), "--target", "win_amd64-nanoserver")
    findings = json.loads(out)["results"][0]["findings"]
    missing = {(f["library"].upper(), f["symbol"]) for f in findings if f["code"] == "missing-function"}
    assert code == 1 and {("USER32.DLL", "CreateWindowExA"), ("GDI32.DLL", "CreateDIBSection")} <= missing
    probe = 'python -c "import PIL._imaging, PIL._imagingcms"'
    code, result = _smoke(run_cli, str(upstream), "win_amd64-nanoserver", probe)
    assert code == 1 and "DLL load failed" in result["message"], result
    code, result = _smoke(run_cli, pillow_nanoserver["wheels"][0], "win_amd64-nanoserver", probe)
    assert code == 0 and result["runtime"] == "windows-cpython-3.11-amd64-nanoserver", result


@pytest.mark.slow
def test_nanoserver_wheel_has_no_display_and_says_so(pillow_nanoserver, run_cli) -> None:  # type: ignore[no-untyped-def]
    command = (
        'python -c "from PIL import Image, ImageWin, _imaging\n'
        "assert not hasattr(_imaging, 'drawwmf')\n"
        "try:\n    ImageWin.Dib('RGB', (4, 4))\nexcept OSError as e:\n    assert 'PILLOW_NO_WIN32_DISPLAY' in str(e)\n"
        "else:\n    raise SystemExit('Dib worked')\""
    )
    code, result = _smoke(run_cli, pillow_nanoserver["wheels"][0], "win_amd64-nanoserver", command)
    assert code == 0, result


@pytest.mark.slow
def test_desktop_wheel_keeps_imagewin_and_imagegrab(pillow_desktop, run_cli) -> None:  # type: ignore[no-untyped-def]
    job = pillow_desktop
    wheel = Path(job["wheels"][0])
    (smoke,) = job["smoke"]
    assert smoke["status"] == "passed" and smoke["runtime"] == "windows-cpython-3.11-amd64", smoke
    imports = _imports(wheel, IMAGING)
    assert {"CreateWindowExA", "GetDC"} <= imports["USER32.DLL"] and "CreateDIBSection" in imports[
        "GDI32.DLL"
    ]
    assert "GetICMProfileA" in _imports(wheel, IMAGINGCMS)["GDI32.DLL"]
    code, out, err = run_cli("verify", "--json", str(wheel), "--target", "win_amd64")
    assert code == 0, (out, err)
    code, out, _ = run_cli("verify", "--json", str(wheel), "--target", "win_amd64-nanoserver")
    assert code == 1 and "USER32" in out.upper()
    command = (
        'python -c "from PIL import Image, ImageWin, ImageGrab, _imaging\n'
        "assert hasattr(_imaging, 'drawwmf') and hasattr(_imaging, 'grabclipboard_win32')\n"
        "dib = ImageWin.Dib('RGB', (4, 4)); dib.paste(Image.new('RGB', (4, 4), (1, 2, 3)))\""
    )
    code, result = _smoke(run_cli, str(wheel), "win_amd64", command)
    assert code == 0, result
    # The desktop wheel on the runtime without USER32/GDI32 fails as upstream's does.
    code, result = _smoke(run_cli, str(wheel), "win_amd64-nanoserver", 'python -c "import PIL"')
    assert code == 1 and "DLL load failed while importing _imaging" in result["message"], result


@pytest.mark.slow
def test_the_nano_server_wheel_is_published_to_its_channel_with_its_proof(
    pillow_nanoserver, run_cli, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Its build record becomes its proof record; the landing page shows it in the nanoserver channel."""
    from pipeline.proof import validate

    wheel = Path(pillow_nanoserver["wheels"][0])
    root = tmp_path / "index"
    code, out, err = run_cli("publish", str(wheel), "--to", str(root), "--target", "win_amd64-nanoserver")
    assert code == 0, err
    proof = json.loads((root / "nanoserver/files/pillow" / (wheel.name + ".proof.json")).read_text())
    assert validate(proof) == []
    assert proof["origin"]["kind"] == "built" and proof["target"] == "win_amd64-nanoserver"
    assert [p["applied_by"] for p in proof["patches"]] == ["prepare"]
    assert proof["patches"][0]["file"].endswith("no-win32-display-for-nanoserver.patch")
    assert proof["verify"][0]["ok"] is True and proof["build"]["repair"]["tool"] == "delvewheel"
    assert proof["smoke"]["status"] == "passed"
    assert proof["smoke"]["runtime"] == "windows-cpython-3.11-amd64-nanoserver"
    assert "PIL._imaging" in proof["smoke"]["imported"] and "JPEG" in proof["smoke"]["command"]
    landing = (root / "index.html").read_text()
    assert 'data-target="win_amd64-nanoserver"' in landing and "built here, verified, imported" in landing
    page = (root / "packages/pillow.html").read_text()
    assert "pip install --index-url INDEX/nanoserver/simple/ pillow" in page and "Nano Server:" in page
    code, out, _ = run_cli("report", str(root), "--json")
    (cell,) = json.loads(out)["files"]
    assert (cell["channel"], cell["state"]) == ("nanoserver", "proven")
