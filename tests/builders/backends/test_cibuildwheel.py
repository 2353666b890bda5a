"""The cibuildwheel backend: its translation read back by cibuildwheel's own option parser, and a real build.

The translation tests need no container engine (seconds). The end-to-end test builds MarkupSafe 2.1.5's
pinned sdist with the real cibuildwheel inside rewheel's local podman image (made once with debootstrap and
cached), then checks the wheel's tags, its contents and that it imports.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest
from packaging.utils import parse_wheel_filename

from conftest import REPO, need_toolset
from pipeline.builders.backends import BuildRequest
from pipeline.builders.backends.cibuildwheel import (
    CibuildwheelBackend,
    cibuildwheel_config,
    format_config_settings,
    format_environment,
    quote_environment_value,
)
from pipeline.engines import Engine
from pipeline.errors import RecipeError, RewheelError
from pipeline.plan import Job, plan
from pipeline.recipe import load_recipe, parse_recipe

MARKUPSAFE_SDIST = ("MarkupSafe", "2.1.5", "MarkupSafe-2.1.5.tar.gz",
                    "d283d37a890ba4c1ae73ffadf8046435c76e7bc2247bbb63c00bd1a709c6544b")  # fmt: skip

# Values chosen to break naive quoting: spaces, $, both quote kinds, backslashes, backticks, '=' and empty.
TRICKY = {
    "PLAIN": "-O2",
    "SPACES": "-O2 -g -DNDEBUG",
    "DOLLAR": "$HOME/lib and ${PATH}",
    "QUOTES": 'it\'s "quoted" \\ `tick` a=b',
    "EMPTY": "",
}

RECIPE = textwrap.dedent(
    """
    name = "demo"
    targets = ["manylinux_2_17_x86_64", "musllinux_1_2_aarch64", "win_amd64-nanoserver"]
    python = ["3.11", "3.12"]

    [[source]]
    version = "1.0"
    kind = "sdist"
    filename = "demo-1.0.tar.gz"
    sha256 = "0000000000000000000000000000000000000000000000000000000000000000"

    [features.gui]
    description = "window and clipboard support"
    environment = { LINK = "/DELAYLOAD:USER32.dll", DEMO_GUI = "0" }
    config-settings = { "--build-option" = "--without-gui" }
    lost = "ImageGrab and ImageWin"

    [build]
    environment = { PLAIN = "-O2", SPACES = "-O2 -g -DNDEBUG", DOLLAR = "$HOME/lib and ${PATH}", QUOTES = "it's \\"quoted\\" \\\\ `tick` a=b", EMPTY = "" }
    config-settings = { "setup-args" = ["-Dfoo=enabled", "-Dbar=with space"], "builddir" = "build dir" }
    before-all = ["echo one", "echo 'two words'"]
    before-build = ["pip install cython==3.0.11"]
    cibuildwheel = { "test-requires" = ["pytest", "hypothesis>=6"], "build-verbosity" = 2, "environment-pass" = ["CC"] }

    [build.target."win_*-nanoserver"]
    disable-features = ["gui"]

    [repair.auditwheel]
    exclude = ["libfoo.so.1", "libbar.so.2"]
    plat = "manylinux_2_17_x86_64"

    [repair.delvewheel]
    no-dll = ["msvcp140.dll", "vcruntime140.dll"]
    add-path = ['C:\\libs\\bin']

    [test]
    imports = ["demo", "demo._speedups"]
    command = "python -c \\"import demo; assert demo.ok\\""
    """
)

PODMAN = Engine(
    name="podman",
    executable="/usr/bin/podman",
    version="4.3.1",
    create_args=("--ulimit", "nofile=20000:20000"),
)


@pytest.fixture(scope="module")
def demo_jobs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Job]:
    folder = tmp_path_factory.mktemp("recipes") / "recipes"
    folder.mkdir()
    path = folder / "demo.toml"
    path.write_text(RECIPE, encoding="utf-8")
    recipe = parse_recipe(RECIPE, path)
    return {f"{j.target}/{j.python}": j for j in plan([recipe])}


def read_back(config: dict[str, str], identifier: str, platform: str, package_dir: Path):  # type: ignore[no-untyped-def]
    """cibuildwheel's own reading of our variables: its BuildOptions for `identifier`."""
    from cibuildwheel.options import CommandLineArguments, compute_options

    args = CommandLineArguments.defaults()
    args.package_dir = package_dir
    args.only = identifier
    options = compute_options(platform=platform, command_line_arguments=args, env={**config, "CC": "gcc"})  # type: ignore[arg-type]
    assert options.globals.build_selector(identifier)
    return options.build_options(identifier)


def config_settings_flags(build_options) -> list[str]:  # type: ignore[no-untyped-def]
    """The -C flags cibuildwheel's build frontend will really pass for the parsed config-settings."""
    from cibuildwheel.frontend import get_build_frontend_extra_flags, prepare_config_settings

    prepared = prepare_config_settings(build_options.config_settings, project=Path("/p"), package=Path("/p"))
    return get_build_frontend_extra_flags(build_options.build_frontend, 0, prepared)


def test_environment_values_survive_cibuildwheels_parser() -> None:
    from cibuildwheel.environment import parse_environment

    parsed = parse_environment(format_environment(TRICKY)).as_dictionary({"HOME": "/root", "PATH": "/bin"})
    for name, value in TRICKY.items():
        assert parsed[name] == value, name
    assert quote_environment_value("plain") == "'plain'"


def test_linux_translation_read_back_by_cibuildwheel(demo_jobs: dict[str, Job], tmp_path: Path) -> None:
    job = demo_jobs["manylinux_2_17_x86_64/3.11"]
    config = cibuildwheel_config(job, engine=PODMAN, image="localhost/rewheel-test:1")
    assert config["CIBW_BUILD"] == "cp311-manylinux_x86_64"
    options = read_back(config, "cp311-manylinux_x86_64", "linux", tmp_path)

    environment = options.environment.as_dictionary({"HOME": "/root", "PATH": "/bin"})
    for name, value in TRICKY.items():
        assert environment[name] == value, name
    assert environment["CC"] == "gcc"  # environment-pass from the extra options reached cibuildwheel
    assert "LINK" not in environment  # the gui feature is disabled only for nanoserver

    flags = config_settings_flags(options)
    assert flags == ["-Csetup-args=-Dfoo=enabled", "-Csetup-args=-Dbar=with space", "-Cbuilddir=build dir"]
    assert options.before_all == "echo one && echo 'two words'"
    assert options.before_build == "pip install cython==3.0.11"
    assert options.repair_command == (
        "auditwheel repair --plat manylinux_2_17_x86_64 --exclude libfoo.so.1 --exclude libbar.so.2"
        " -w {dest_dir} {wheel}"
    )
    assert (
        options.test_command
        == 'python -c "import demo; import demo._speedups" && python -c "import demo; assert demo.ok"'
    )
    assert options.test_requires == ["pytest", "hypothesis>=6"]
    assert options.build_verbosity == 2
    assert options.manylinux_images["x86_64"] == "localhost/rewheel-test:1"
    assert options.container_engine.name == "podman"
    assert options.container_engine.create_args == ("--ulimit", "nofile=20000:20000")


def test_musllinux_aarch64_image_option_and_default_image(demo_jobs: dict[str, Job], tmp_path: Path) -> None:
    job = demo_jobs["musllinux_1_2_aarch64/3.12"]
    config = cibuildwheel_config(job, engine=PODMAN, image=None)
    assert config["CIBW_MUSLLINUX_AARCH64_IMAGE"] == "musllinux_1_2"
    options = read_back(config, "cp312-musllinux_aarch64", "linux", tmp_path)
    from cibuildwheel.options import _get_pinned_container_images

    # cibuildwheel resolved the catalogue's image name to its own pinned image for aarch64.
    assert options.musllinux_images["aarch64"] == _get_pinned_container_images()["aarch64"]["musllinux_1_2"]
    assert options.repair_command.startswith(
        "auditwheel repair --plat manylinux_2_17_x86_64 "
    )  # the recipe's plat


def test_windows_translation_with_disabled_feature(demo_jobs: dict[str, Job], tmp_path: Path) -> None:
    job = demo_jobs["win_amd64-nanoserver/3.11"]
    config = cibuildwheel_config(job)  # no engine, no image on Windows
    assert "CIBW_CONTAINER_ENGINE" not in config
    options = read_back(config, "cp311-win_amd64", "windows", tmp_path)
    environment = options.environment.as_dictionary({"HOME": "/root", "PATH": "/bin"})
    assert environment["LINK"] == "/DELAYLOAD:USER32.dll"  # MSVC's link.exe reads LINK
    assert environment["DEMO_GUI"] == "0"
    assert environment["QUOTES"] == TRICKY["QUOTES"]
    assert "-C--build-option=--without-gui" in config_settings_flags(options)
    assert options.repair_command == (
        'delvewheel repair --no-dll "msvcp140.dll;vcruntime140.dll" --add-path C:\\libs\\bin -w {dest_dir} {wheel}'
    )
    assert options.test_command.startswith('python -c "import demo; import demo._speedups"')


def test_print_build_identifiers_matches_the_job(demo_jobs: dict[str, Job], tmp_path: Path) -> None:
    """The real cibuildwheel CLI selects exactly the job's identifier from our variables (no engine needed)."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "demo"\nversion = "1.0"\n', encoding="utf-8")
    for key, platform in [("manylinux_2_17_x86_64/3.12", "linux"), ("musllinux_1_2_aarch64/3.11", "linux"),
                          ("win_amd64-nanoserver/3.11", "windows")]:  # fmt: skip
        job = demo_jobs[key]
        config = cibuildwheel_config(job, engine=PODMAN, image=None)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CIBW_")} | config
        out = subprocess.run(
            [sys.executable, "-m", "cibuildwheel", "--print-build-identifiers", "--platform", platform],
            cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        assert out == [config["CIBW_BUILD"]], key


def test_recipe_owned_and_unknown_options_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "recipes"
    folder.mkdir()
    for extra, message in [('"before-all" = "x"', "use [build] before-all"),
                           ('"test-comand" = "x"', "is not a cibuildwheel option")]:  # fmt: skip
        text = RECIPE.replace('"build-verbosity" = 2,', f"{extra},")
        recipe = parse_recipe(text, folder / "demo.toml")
        job = plan([recipe], ["manylinux_2_17_x86_64"])[0]
        with pytest.raises(RecipeError, match=re.escape(message)):
            cibuildwheel_config(job, engine=PODMAN, image=None)
    with pytest.raises(RecipeError, match="not a valid shell variable"):
        format_environment({"BAD NAME": "x"})
    with pytest.raises(RecipeError, match="cannot be passed"):
        format_config_settings({"a b": "x"})


def test_unavailable_reason_names_the_problem(
    demo_jobs: dict[str, Job], monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = CibuildwheelBackend()
    reason = backend.unavailable_reason(demo_jobs["win_amd64-nanoserver/3.11"])
    assert reason is not None and "only on Windows" in reason
    monkeypatch.setenv("REWHEEL_CONTAINER_ENGINE", "none")
    from pipeline import engines

    reason = backend.unavailable_reason(demo_jobs["manylinux_2_17_x86_64/3.11"])
    assert reason is not None and "no working container engine" in reason and "zig" in reason
    assert engines.detect_engine() is None


def test_local_image_carries_the_recipes_pythons_and_names_a_missing_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The image's CPython set is the recipes' (a new Python is a new image key); each comes from Debian (3.11)
    or the host's pyenv; a machine without one gets one line naming it."""
    from pipeline.runtimes.podman_images import MANYLINUX_X86_64

    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "a.toml").write_text('name = "a"\npython = ["3.12", "3.11"]\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    image = MANYLINUX_X86_64
    assert image.python_versions() == ("3.11", "3.12")
    sources = {p.version: p for p in image.python_sources()}
    assert (
        sources["3.11"].origin == "debian" and sources["3.11"].cibuildwheel_path == "/opt/python/cp311-cp311"
    )
    assert sources["3.12"].origin == "pyenv" and Path(sources["3.12"].interpreter).is_file()  # the host's own
    key = image.content_key()
    assert image.with_pythons(["3.12"]) is image  # a job whose Pythons the image has uses the same image

    (recipes / "b.toml").write_text('name = "b"\npython = ["3.13"]\n', encoding="utf-8")
    assert image.python_versions() == ("3.11", "3.12", "3.13")
    assert image.content_key() != key  # another Python set: another image, built on the next use

    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    reason = image.unavailable_reason()
    assert reason is not None and "\n" not in reason
    assert (
        reason.startswith("no CPython 3.12 for the local manylinux image") and "has no 3.12.x build" in reason
    )


# -- the real thing ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def manylinux_image():  # type: ignore[no-untyped-def]
    need_toolset("podman")
    from pipeline.runtimes.podman_images import MANYLINUX_X86_64

    started = time.monotonic()
    MANYLINUX_X86_64.build()
    print(f"image ready in {time.monotonic() - started:.1f} s", file=sys.stderr)
    assert MANYLINUX_X86_64.exists()
    return MANYLINUX_X86_64


@pytest.mark.slow
def test_emptied_image_store_is_refilled_from_the_cached_root(manylinux_image) -> None:  # type: ignore[no-untyped-def]
    """podman's store can be wiped (a new machine, `podman system reset`): the cached root re-imports fast."""
    tarball = manylinux_image.rootfs_tarball()
    engine = manylinux_image._engine()
    if not tarball.is_file():
        # The image is in podman's store but its root was made under another cache dir: make it here first.
        engine.run("rmi", manylinux_image.image_reference())
        manylinux_image.build()
    made = tarball.stat().st_mtime
    engine.run("rmi", manylinux_image.image_reference())
    assert not manylinux_image.exists()
    started = time.monotonic()
    manylinux_image.build()
    elapsed = time.monotonic() - started
    assert manylinux_image.exists()
    assert tarball.stat().st_mtime == made  # re-imported, not made again
    print(
        f"\nre-import of the cached root: {elapsed:.0f} s", file=sys.stderr
    )  # speed: benchmarks, not asserts
    labels = engine.run(
        "image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", manylinux_image.image_reference()
    )
    assert labels.stdout.strip() == "linux/amd64"  # what cibuildwheel checks before deciding --pull=never


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_real_cibuildwheel_builds_markupsafe_in_local_podman_image(
    manylinux_image, pypi_file, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from pipeline.builders.prepare import sdist_root
    from pipeline.unpack import unpack

    monkeypatch.delenv("REWHEEL_CONTAINER_ENGINE", raising=False)
    sdist = pypi_file(*MARKUPSAFE_SDIST)
    tree = sdist_root(unpack(sdist, tmp_path / "source"), sdist.name)
    recipe = load_recipe(REPO / "recipes" / "markupsafe.toml")
    job = Job(recipe, "2.1.5", "manylinux_2_17_x86_64", "3.11")
    backend = CibuildwheelBackend()
    assert backend.unavailable_reason(job) is None
    assert backend.fingerprint(job)["image"] == manylinux_image.image_reference()

    request = BuildRequest(job=job, source_tree=tree, source_file=sdist, out_dir=tmp_path / "out",
                           work_dir=tmp_path / "work")  # fmt: skip
    started = time.monotonic()
    result = backend.build(request)
    print(f"cibuildwheel build: {time.monotonic() - started:.1f} s", file=sys.stderr)

    assert len(result.wheels) == 1
    name, version, _, tags = parse_wheel_filename(result.wheels[0].name)
    assert (name, str(version)) == ("markupsafe", "2.1.5")
    assert {str(t) for t in tags} == {"cp311-cp311-manylinux_2_17_x86_64", "cp311-cp311-manylinux2014_x86_64"}
    assert result.repaired
    assert result.tool_versions["image"] == manylinux_image.image_reference()
    # cibuildwheel really built, repaired and ran the recipe's tests in the container:
    assert "Repairing wheel" in result.log and "Testing wheel" in result.log
    wheel = result.wheels[0]
    names = zipfile.ZipFile(wheel).namelist()
    assert "markupsafe/_speedups.cpython-311-x86_64-linux-gnu.so" in names

    # And it imports on this (glibc x86_64, CPython 3.11) host, from the wheel, not from anything installed.
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
                    "--target", str(site), str(wheel)], check=True)  # fmt: skip
    probe = (
        "import markupsafe, markupsafe._speedups as s; "
        "assert markupsafe.escape('<a>') == '&lt;a&gt;'; print(s.__file__)"
    )
    out = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); {probe}"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert out.strip().startswith(str(site))

    from pipeline.verify import verify_wheel

    report = verify_wheel(wheel, "manylinux_2_17_x86_64")
    assert report.ok, report.to_json()


def test_build_failure_is_one_line_with_the_log(manylinux_image, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A package that does not compile: a RewheelError naming the job and the log, not a traceback."""
    tree = tmp_path / "broken"
    tree.mkdir()
    (tree / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "nonexistent_backend"\n'
        '[project]\nname = "broken"\nversion = "1.0"\n',
        encoding="utf-8",
    )
    folder = tmp_path / "recipes"
    folder.mkdir()
    text = RECIPE.replace('name = "demo"', 'name = "broken"').replace(
        '"test-requires" = ["pytest", "hypothesis>=6"], ', ""
    )
    recipe = parse_recipe(text, folder / "broken.toml")
    job = Job(recipe, "1.0", "manylinux_2_17_x86_64", "3.11")
    request = BuildRequest(job=job, source_tree=tree, source_file=tree / "pyproject.toml",
                           out_dir=tmp_path / "out", work_dir=tmp_path / "work")  # fmt: skip
    with pytest.raises(RewheelError) as failure:
        CibuildwheelBackend().build(request)
    message = str(failure.value)
    assert "\n" not in message and job.id in message and "cibuildwheel failed" in message
    log = Path(shlex.split(message.rsplit("(log: ", 1)[1].rstrip(")"))[0])
    assert log.is_file() and "nonexistent_backend" in log.read_text(encoding="utf-8")


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_rewheel_build_cli_builds_every_python_of_the_recipe(
    manylinux_image, tmp_path: Path, rewheel_exe
) -> None:  # type: ignore[no-untyped-def]
    """`rewheel build recipes/markupsafe.toml --target manylinux_2_17_x86_64 --backend cibuildwheel`, end to end:
    one wheel per Python the recipe lists, each built, repaired and tested by the real cibuildwheel in the one
    local image, verified, and imported here by the matching CPython; a second run builds nothing."""
    import json

    from pipeline.runtimes.podman_images import find_python

    recipe = load_recipe(REPO / "recipes" / "markupsafe.toml")
    assert {"3.11", "3.12"} <= set(recipe.python)
    assert set(recipe.python) <= set(manylinux_image.python_versions())  # the image carries them all
    wheelhouse = tmp_path / "wheelhouse"
    env = {k: v for k, v in os.environ.items() if k != "REWHEEL_CONTAINER_ENGINE"}
    command = [*rewheel_exe, "build", str(REPO / "recipes" / "markupsafe.toml"), "--target", "manylinux_2_17_x86_64",
               "--backend", "cibuildwheel", "--wheelhouse", str(wheelhouse), "--json"]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run([*command, "--force"], capture_output=True, text=True, env=env, cwd=REPO)
    print(f"rewheel build (cibuildwheel, {len(recipe.python)} Pythons): {time.monotonic() - started:.1f} s",
          file=sys.stderr)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    jobs = {job["python"]: job for job in summary["jobs"]}
    assert sorted(jobs) == sorted(recipe.python)
    # The backend and its reason are said once for the run, not on every job line.
    assert done.stderr.count("backend cibuildwheel: requested with --backend cibuildwheel") == 1
    assert summary["counts"]["built"] == summary["counts"]["verified"] == len(recipe.python)
    for python, job in jobs.items():
        assert job["status"] == "built" and job["backend"] == "cibuildwheel", job
        [wheel] = [Path(w) for w in job["wheels"]]
        tag = "cp" + python.replace(".", "")
        assert {str(t) for t in parse_wheel_filename(wheel.name)[3]} == {
            f"{tag}-{tag}-manylinux_2_17_x86_64", f"{tag}-{tag}-manylinux2014_x86_64"}  # fmt: skip
        record = json.loads(Path(job["records"][0]).read_text(encoding="utf-8"))
        assert record["verify"]["ok"] is True and record["verify"]["binaries_checked"] == 1
        assert record["key_inputs"]["backend"]["fingerprint"]["image"] == manylinux_image.image_reference()
        # Imported here, from the wheel, by a CPython of the wheel's own version.
        interpreter = sys.executable if python == f"{sys.version_info[0]}.{sys.version_info[1]}" else None
        if interpreter is None:
            source = find_python(python)
            interpreter = source.interpreter if source.origin == "pyenv" else f"/usr/bin/python{python}"
        site = tmp_path / f"site-{tag}"
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(site)
        imported = subprocess.run(
            [interpreter, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); "
             "import markupsafe, markupsafe._speedups as s; assert markupsafe.escape('<a>') == '&lt;a&gt;'; "
             "print(s.__file__)"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert imported.returncode == 0, imported.stderr
        assert (
            imported.stdout.strip().startswith(str(site)) and f"cpython-{tag[2:]}-x86_64" in imported.stdout
        )
    assert done.stderr.count("Testing wheel") >= len(recipe.python)  # cibuildwheel's test step ran [test]

    again = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {job["status"] for job in json.loads(again.stdout)["jobs"]} == {"up-to-date"}
    assert "cibuildwheel: building" not in again.stderr


def test_a_wheel_of_the_wrong_libc_family_is_rejected() -> None:
    from pipeline.builders.backends.cibuildwheel import _check_libc_family
    from pipeline.targets import get_target

    glibc = [Path("m-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")]
    musl = [Path("m-1.0-cp311-cp311-musllinux_1_2_x86_64.whl")]
    _check_libc_family(musl, get_target("musllinux_1_2_x86_64"), "img", "job")
    _check_libc_family(glibc, get_target("manylinux_2_17_x86_64"), "img", "job")
    with pytest.raises(RewheelError, match="not a musllinux wheel"):
        _check_libc_family(glibc, get_target("musllinux_1_2_x86_64"), "img", "job")
    with pytest.raises(RewheelError, match="not a manylinux wheel"):
        _check_libc_family(musl, get_target("manylinux_2_17_x86_64"), "img", "job")


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_glibc_image_passed_off_as_musllinux_is_caught(manylinux_image, pypi_file, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The field notes' trap, for real: cibuildwheel happily builds cp311-musllinux_x86_64 in a glibc image
    (auditwheel --plat auto then says manylinux); rewheel must refuse the result."""
    from pipeline.builders.prepare import sdist_root
    from pipeline.unpack import unpack

    text = (REPO / "recipes" / "markupsafe.toml").read_text(encoding="utf-8")
    text += (
        f'\n[build.cibuildwheel]\n"musllinux-x86_64-image" = "{manylinux_image.image_reference()}"\n'
        '\n[repair.auditwheel]\nplat = "auto"\n'
    )
    folder = tmp_path / "recipes"
    folder.mkdir()
    recipe = parse_recipe(text, folder / "markupsafe.toml")
    sdist = pypi_file(*MARKUPSAFE_SDIST)
    tree = sdist_root(unpack(sdist, tmp_path / "source"), sdist.name)
    job = Job(recipe, "2.1.5", "musllinux_1_2_x86_64", "3.11")
    request = BuildRequest(job=job, source_tree=tree, source_file=sdist, out_dir=tmp_path / "out",
                           work_dir=tmp_path / "work")  # fmt: skip
    with pytest.raises(RewheelError, match="is not a musllinux wheel"):
        CibuildwheelBackend().build(request)
    [left] = (tmp_path / "out").glob("*.whl")
    assert left.name.endswith("manylinux_2_17_x86_64.whl")


def test_an_unreachable_upstream_image_makes_cibuildwheel_unavailable(demo_jobs: dict[str, Job]) -> None:
    """aarch64 has no local stand-in: cibuildwheel is usable only if the pinned image is here or reachable."""
    need_toolset("podman")
    from cibuildwheel.options import _get_pinned_container_images

    from pipeline.engines import detect_engine

    engine = detect_engine()
    assert engine is not None and engine.name in ("podman", "docker")
    job = demo_jobs["musllinux_1_2_aarch64/3.11"]
    reason = CibuildwheelBackend().unavailable_reason(job)
    if not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
        assert reason is not None and "qemu-user binfmt" in reason
        return
    reference = _get_pinned_container_images()["aarch64"]["musllinux_1_2"]
    present = engine.run("image", "exists" if engine.name == "podman" else "inspect", reference, check=False)
    reachable = engine.run("manifest", "inspect", reference, check=False, timeout=60)
    if present.returncode == 0 or reachable.returncode == 0:
        assert reason is None
    else:
        assert reason is not None and "its registry cannot be reached" in reason and "zig" in reason
