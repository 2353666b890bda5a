"""The Pillow recipe: Windows desktop with every feature, Nano Server without USER32/GDI32.

The evidence chain, each link on real inputs:
1. upstream's pinned cp311 win_amd64 wheel fails `verify` on Nano Server only through USER32/GDI32
   functions in PIL/_imaging and PIL/_imagingcms, and passes on desktop Windows;
2. compiling the pinned sdist's display.c, Dib.c, _imaging.c and _imagingcms.c for Windows (mingw-w64,
   CPython 3.11's own headers) imports exactly those functions, so the patch acts where the wheel's imports
   come from; with the recipe's patch and its macro the same files import none, and without the macro the
   patch changes nothing;
3. the patch applies strictly to the pinned sdist, for the nanoserver job only (rewheel's prepare stage);
4. cibuildwheel itself, parsing what rewheel hands it, sees the macro (CL), the dependency build
   (before-all), Pillow's switches (config-settings) and the repair command for Nano Server, and a desktop
   build with every feature;
5. the Nano Server behaviour check the release workflow runs in a container works on real Pillow (its
   portable half, here on upstream's Linux wheel).
What needs Windows (building with MSVC, running in Nano Server) runs in the release workflow, not here.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pefile
import pytest

from conftest import REPO, need_toolset, unavailable
from pipeline.builders.backends.cibuildwheel import cibuildwheel_config
from pipeline.builders.prepare import PreparedSource
from pipeline.plan import Job, plan
from pipeline.recipe import check_patch_files, check_targets, load_recipe
from pipeline.verify import verify_wheel

RECIPE = REPO / "recipes" / "pillow.toml"
UPSTREAM_WHEEL = (
    "pillow",
    "10.4.0",
    "pillow-10.4.0-cp311-cp311-win_amd64.whl",
    "cbed61494057c0f83b83eb3a310f0bf774b09513307c434d4366ed64f4128a91",
)
WINDOWING_DLLS = {"USER32.DLL", "GDI32.DLL"}
# The translation units whose Win32 code the patch guards (everything that imports USER32/GDI32).
PATCHED_SOURCES = ("src/display.c", "src/libImaging/Dib.c", "src/_imaging.c", "src/_imagingcms.c")
MACRO = "PILLOW_NO_WIN32_DISPLAY"
MINGW_GCC = "x86_64-w64-mingw32-gcc"
MINGW_NM = "x86_64-w64-mingw32-nm"


@pytest.fixture(scope="module")
def jobs() -> dict[str, Job]:
    recipe = load_recipe(RECIPE)
    return {f"{j.target}/{j.python}": j for j in plan([recipe])}


@pytest.fixture(scope="module")
def prepared(jobs: dict[str, Job], tmp_path_factory: pytest.TempPathFactory) -> dict[str, PreparedSource]:
    """The pinned sdist fetched, unpacked and patched by rewheel's own prepare stage, per target."""
    from pipeline.builders.prepare import prepare

    return {
        target: prepare(jobs[f"{target}/3.11"], tmp_path_factory.mktemp(target))
        for target in ("win_amd64", "win_amd64-nanoserver")
    }


def tree_of(prepared: PreparedSource) -> Path:
    assert prepared.tree is not None
    return prepared.tree


def upstream_windowing_imports(wheel: Path) -> dict[str, set[str]]:
    """extension file -> USER32/GDI32 functions it imports (straight from the PE import tables)."""
    found: dict[str, set[str]] = {}
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if not name.endswith(".pyd"):
                continue
            pe = pefile.PE(data=archive.read(name), fast_load=False)
            for entry in getattr(pe, "DIRECTORY_ENTRY_IMPORT", []):
                if entry.dll.decode().upper() in WINDOWING_DLLS:
                    found.setdefault(name, set()).update(i.name.decode() for i in entry.imports if i.name)
            pe.close()
    return found


def test_recipe_is_valid_and_its_patch_is_pinned(jobs: dict[str, Job]) -> None:
    recipe = load_recipe(RECIPE)
    assert check_patch_files(recipe) == [] and check_targets(recipe) == []
    targets = (
        "musllinux_1_2_x86_64",
        "musllinux_1_2_aarch64",
        "manylinux_2_17_aarch64",
        "musllinux_1_2_armv7l",
        "manylinux_2_31_armv7l",
        "win_amd64",
        "win_amd64-nanoserver",
    )
    assert set(jobs) == {f"{t}/{p}" for t in targets for p in ("3.11", "3.12")}
    assert recipe.build.for_target("win_amd64-nanoserver").disable_features == ["win32-display"]
    assert recipe.build.for_target("win_amd64").disable_features == []
    header = (recipe.patch_dir / recipe.patch[0].file).read_text(encoding="utf-8").split("\n--- ", 1)[0]
    assert "Why:" in header and "Drop when:" in header and "Applies to:" in header


def test_patch_applies_strictly_for_nanoserver_only(prepared: dict[str, PreparedSource]) -> None:
    nano, desktop = tree_of(prepared["win_amd64-nanoserver"]), tree_of(prepared["win_amd64"])
    assert [p.name for p in prepared["win_amd64-nanoserver"].patches_applied] == [
        "0001-no-win32-display-for-nanoserver.patch"
    ]
    assert prepared["win_amd64"].patches_applied == []
    assert (
        MACRO in (nano / "src/display.c").read_text() and MACRO not in (desktop / "src/display.c").read_text()
    )
    # Strict: the same patch on the already patched tree is refused, naming the file and the hunk.
    from pipeline.patching import PatchError, apply_patch

    patch = load_recipe(RECIPE).patch_dir / "0001-no-win32-display-for-nanoserver.patch"
    with pytest.raises(PatchError, match=r"0001-no-win32-display-for-nanoserver\.patch.*hunk"):
        apply_patch(nano, patch, 1)


@pytest.fixture(scope="module")
def windows_python_headers(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """-I flags for CPython 3.11's own headers with its Windows pyconfig.h (PC/), from the pinned orig tarball."""
    need_toolset("mingw", "lcms2-headers")
    from pipeline.runtimes._support import RuntimeBuildError, debian_source_orig
    from pipeline.runtimes.musl_cpython import CPYTHON_SOURCE

    try:  # the musl runtime builds from the same pinned tarball, so it is usually cached already
        tarball = debian_source_orig(CPYTHON_SOURCE)
    except RuntimeBuildError as exc:  # no root to add a deb-src entry
        unavailable(str(exc))
    root = tmp_path_factory.mktemp("cpython-headers")
    with tarfile.open(tarball) as archive:  # pinned by sha256; only regular files and folders are taken
        members = [
            m for m in archive.getmembers()
            if (m.isfile() or m.isdir()) and ".." not in Path(m.name).parts
            and ("/Include/" in m.name or m.name.endswith("/PC/pyconfig.h"))
        ]  # fmt: skip
        archive.extractall(root, members=members)
    (source,) = root.iterdir()
    shim = root / "shim"
    shim.mkdir()
    # Pillow includes <Windows.h> (MSVC's file system does not care about case; mingw's headers are lower case).
    (shim / "Windows.h").write_text("#include <windows.h>\n")
    shutil.copy("/usr/include/lcms2.h", shim)  # lcms2.h is the same for every platform
    return [f"-I{shim}", f"-I{source / 'Include'}", f"-I{source / 'PC'}"]


def windows_imports_of(tree: Path, flags: list[str], out: Path) -> tuple[set[str], set[str], set[str]]:
    """Compile the Win32-touching sources for Windows; (__imp_ functions, defined, undefined symbols)."""
    out.mkdir()

    def compile_one(source: str) -> None:
        subprocess.run(
            [MINGW_GCC, "-c", "-O0", '-DPILLOW_VERSION="10.4.0"', *flags, f"-I{tree / 'src/libImaging'}",
             "-o", str(out / (Path(source).stem + ".o")), str(tree / source)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip

    with ThreadPoolExecutor(max_workers=2) as pool:  # the machines have 2 cores
        list(pool.map(compile_one, PATCHED_SOURCES))
    objects = sorted(str(o) for o in out.glob("*.o"))

    def nm(*args: str) -> list[str]:
        return subprocess.run(
            [MINGW_NM, *args, *objects], check=True, capture_output=True, text=True
        ).stdout.split("\n")

    undefined = {line.split()[-1] for line in nm("-u") if line.strip().startswith("U ")}
    defined = {line.split()[-1] for line in nm("--defined-only") if len(line.split()) == 3}
    imports = {s.removeprefix("__imp_") for s in undefined if s.startswith("__imp_")}
    return imports, defined, undefined


def mingw_windowing_exports() -> set[str]:
    """Every function mingw-w64's USER32 and GDI32 import libraries provide."""
    libs = [f"/usr/x86_64-w64-mingw32/lib/lib{name}.a" for name in ("user32", "gdi32")]
    # nm warns (exit 0) about archive members without symbols; an empty answer would fail the test below.
    listing = subprocess.run([MINGW_NM, "-g", "--defined-only", *libs], capture_output=True, text=True).stdout
    exports = {w.removeprefix("__imp_") for w in listing.split() if w.startswith("__imp_")}
    assert {"CreateWindowExA", "BitBlt"} <= exports
    return exports


def test_patch_removes_exactly_what_verify_finds_on_nanoserver(  # type: ignore[no-untyped-def]
    pypi_file, prepared: dict[str, PreparedSource], windows_python_headers: list[str], tmp_path: Path
) -> None:
    wheel = pypi_file(*UPSTREAM_WHEEL)
    assert verify_wheel(wheel, "win_amd64").ok
    nano = verify_wheel(wheel, "win_amd64-nanoserver")
    assert not nano.ok
    missing = {(f.file, (f.library or "").upper(), f.symbol) for f in nano.errors}
    assert {f.code for f in nano.errors} == {"missing-function"}
    assert {file for file, _, _ in missing} == {
        "PIL/_imaging.cp311-win_amd64.pyd",
        "PIL/_imagingcms.cp311-win_amd64.pyd",
    }
    assert {library for _, library, _ in missing} == WINDOWING_DLLS
    assert len(missing) == 51
    in_wheel = upstream_windowing_imports(wheel)
    # Every USER32/GDI32 import of those two extensions is missing on Nano Server; nothing else is.
    assert {s for _, _, s in missing} == set().union(*in_wheel.values())
    assert set(in_wheel) == {"PIL/_imaging.cp311-win_amd64.pyd", "PIL/_imagingcms.cp311-win_amd64.pyd"}

    windowing = mingw_windowing_exports()
    desktop_tree, nano_tree = tree_of(prepared["win_amd64"]), tree_of(prepared["win_amd64-nanoserver"])
    upstream, _, _ = windows_imports_of(desktop_tree, windows_python_headers, tmp_path / "upstream")
    inert, _, _ = windows_imports_of(nano_tree, windows_python_headers, tmp_path / "patched-no-macro")
    reduced, defined, undefined = windows_imports_of(
        nano_tree, [*windows_python_headers, f"-D{MACRO}"], tmp_path / "patched"
    )
    # The sources import exactly the wheel's 49 distinct windowing functions...
    assert upstream & windowing == {s for _, _, s in missing}
    # ...the patch alone changes nothing (desktop-equivalent), and with the macro none remain.
    assert inert == upstream
    assert reduced & windowing == set()
    assert not reduced & {
        "GetICMProfileA",
        "CreateWindowExA",
        "OpenClipboard",
        "CreateDIBSection",
        "PlayEnhMetaFile",
    }
    # What _imaging.c's method table references is still defined (stubs), and drawwmf is gone.
    display_entry_points = {"PyImaging_DisplayWin32", "PyImaging_DisplayModeWin32", "PyImaging_GrabScreenWin32",
                            "PyImaging_GrabClipboardWin32", "PyImaging_CreateWindowWin32", "PyImaging_EventLoopWin32"}  # fmt: skip
    assert display_entry_points <= defined
    assert "PyImaging_DrawWmf" not in defined | undefined


def read_back(config: dict[str, str], identifier: str, package_dir: Path):  # type: ignore[no-untyped-def]
    """cibuildwheel's own reading of rewheel's variables for a Windows identifier."""
    from cibuildwheel.options import CommandLineArguments, compute_options

    args = CommandLineArguments.defaults()
    args.package_dir = package_dir
    args.only = identifier
    options = compute_options(platform="windows", command_line_arguments=args, env=config)  # type: ignore[arg-type]
    return options.build_options(identifier)


def config_settings_flags(build_options) -> list[str]:  # type: ignore[no-untyped-def]
    from cibuildwheel.frontend import get_build_frontend_extra_flags, prepare_config_settings

    prepared = prepare_config_settings(build_options.config_settings, project=Path("/p"), package=Path("/p"))
    return get_build_frontend_extra_flags(build_options.build_frontend, 0, prepared)


def test_cibuildwheel_reads_nanoserver_and_desktop_options(
    jobs: dict[str, Job], prepared: dict[str, PreparedSource]
) -> None:
    """Parsed by cibuildwheel against the real (patched) Pillow tree, so its pyproject.toml
    [tool.cibuildwheel] table is in play and rewheel's CIBW_* variables must win over it."""
    seen = {}
    for target in ("win_amd64", "win_amd64-nanoserver"):
        for python in ("3.11", "3.12"):
            job = jobs[f"{target}/{python}"]
            config = cibuildwheel_config(job)
            options = read_back(config, config["CIBW_BUILD"], tree_of(prepared[target]))
            seen[(target, python)] = options
            environment = options.environment.as_dictionary({"PATH": r"C:\Windows"})
            assert environment["INCLUDE"] == r"C:\rewheel\pillow-deps\inc"
            assert environment["LIB"] == r"C:\rewheel\pillow-deps\lib"
            assert "LINK" not in environment  # no delay-loading: the patch removes the imports instead
            assert config_settings_flags(options) == [
                "-Craqm=enable", "-Craqm=vendor", "-Cfribidi=vendor", "-Cimagequant=disable",
            ]  # fmt: skip
            steps = options.before_all.split(" && ")
            assert steps[0] == "choco install nasm --no-progress -y"
            assert steps[1] == r'set "PATH=%PATH%;C:\Program Files\NASM"'
            assert steps[2].startswith(
                r"python winbuild\build_prepare.py -v --no-imagequant --architecture AMD64"
            )
            assert r"--dir C:\rewheel\pillow-deps " in steps[2]
            assert steps[3] == r"C:\rewheel\pillow-deps\build_dep_all.cmd"
            assert "wheels-dependencies.sh" not in options.before_all  # the sdist's Linux/macOS before-all
            assert options.repair_command == "delvewheel repair -w {dest_dir} {wheel}"
            assert options.test_command.startswith(
                'python -c "import PIL.Image; import PIL._imaging; import PIL._imagingcms" && '
            )
            assert "wheels-test.sh" not in options.test_command
            if target == "win_amd64-nanoserver":
                assert environment["CL"] == f"/D{MACRO}"
            else:
                assert "CL" not in environment  # desktop keeps every feature
    assert seen[("win_amd64", "3.12")].before_all == seen[("win_amd64-nanoserver", "3.11")].before_all


LINUX_WHEEL = (
    "pillow",
    "10.4.0",
    "pillow-10.4.0-cp311-cp311-manylinux_2_28_x86_64.whl",
    "76a911dfe51a36041f2e756b00f96ed84677cdeb75d25c767f296c1c1eda1319",
)


def test_nanoserver_behaviour_script_runs_its_portable_checks_on_linux(pypi_file, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The release workflow runs .github/scripts/pillow_nanoserver_check.py inside Nano Server. Here its
    portable half runs on upstream's Linux wheel, which has no WMF renderer either: the crafted WMF opens
    and its load() raises OSError, the behaviour the Nano Server build promises."""
    site = tmp_path / "site"
    with zipfile.ZipFile(pypi_file(*LINUX_WHEEL)) as archive:
        archive.extractall(site)
    script = REPO / ".github" / "scripts" / "pillow_nanoserver_check.py"
    result = subprocess.run(
        [sys.executable, "-I", str(script), "--site", str(site)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok   codecs: JPEG and PNG round trips" in result.stdout
    assert "ok   wmf_is_identify_only: OSError: cannot find loader for this WMF file" in result.stdout
    assert "skip screen_grab: Windows only" in result.stdout


def test_licence_step_appends_bundled_licences_but_not_fribidi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last before-all step (a `python -c` run by cmd.exe on Windows), executed here against a stand-in
    of build_prepare.py's licence folder: LICENSE gains the bundled libraries' texts, never FriBiDi's or
    libimagequant's (the wheel does not contain them)."""
    step = load_recipe(RECIPE).build.for_target("win_amd64").before_all[-1]
    assert step.startswith('python -c "') and step.endswith('"') and step.count('"') == 2
    licences = tmp_path / "license"
    licences.mkdir()
    for name in ("zlib-1.3.1", "fribidi-1.0.15", "libimagequant-4", "libjpeg-turbo-3.0.3"):
        (licences / f"{name}.txt").write_text(f"{name} terms\n", encoding="utf-8")
    project = tmp_path / "pillow"
    project.mkdir()
    (project / "LICENSE").write_text("HPND\n", encoding="utf-8")
    monkeypatch.chdir(project)
    code = step[len('python -c "') : -1].replace(r"C:\rewheel\pillow-deps\license", str(licences))
    exec(compile(code, "before-all", "exec"), {})
    text = (project / "LICENSE").read_text(encoding="utf-8")
    assert (
        text.startswith("HPND\n") and "===== zlib-1.3.1 =====" in text and "libjpeg-turbo-3.0.3 terms" in text
    )
    assert "fribidi" not in text and "libimagequant" not in text
