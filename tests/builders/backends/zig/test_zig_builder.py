"""The zig backend: real cross builds of pinned sdists (markupsafe, cffi with a target-built libffi), repaired
by the real auditwheel, checked on the target's loader (Debian's musl loader, a musl CPython, arm64 CPython
under qemu-user), and the one-line refusals for what it cannot build (a Rust sdist).

Builds are session-scoped and their zig/native/venv caches live under the shared cache, so a second run only
re-runs setuptools (seconds per wheel)."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, ensure_runtime, need_toolset, unavailable

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the zig backend runs on Linux hosts"),
]

MARKUPSAFE = (
    "MarkupSafe",
    "2.1.5",
    "MarkupSafe-2.1.5.tar.gz",
    "d283d37a890ba4c1ae73ffadf8046435c76e7bc2247bbb63c00bd1a709c6544b",
)
# bcrypt 4.0.1: a small sdist whose extension is Rust (setuptools-rust); pip can fetch it without cargo.
BCRYPT = (
    "bcrypt",
    "4.0.1",
    "bcrypt-4.0.1.tar.gz",
    "27d375903ac8261cfe4047f6709d16f7d18d39b1ec92aaf72af989552a650ebd",
)
TIMINGS: dict[str, float] = {}


def _job(recipe_path: Path, target: str, python: str):  # type: ignore[no-untyped-def]
    from pipeline.plan import Job
    from pipeline.recipe import load_recipe

    recipe = load_recipe(recipe_path)
    return Job(recipe, recipe.source[0].version, target, python)


def _machine(data: bytes) -> str:
    from elftools.elf.elffile import ELFFile

    return str(ELFFile(io.BytesIO(data)).header["e_machine"])


def _extensions(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as archive:
        return {n: archive.read(n) for n in archive.namelist() if n.endswith(".so") or ".so." in n}


@pytest.fixture(scope="session")
def zig_available() -> None:
    try:
        from pipeline.builders.backends.zig.toolchain import zig_executable

        zig_executable()
    except Exception as exc:
        unavailable(str(exc))


@pytest.fixture(scope="session")
def zig_wheel(tmp_path_factory: pytest.TempPathFactory, pypi_file, zig_available):  # type: ignore[no-untyped-def]
    """zig_wheel(recipe file, target, python) -> the auditwheel-repaired wheel (built once per session)."""
    from pipeline.builders.backends import BuildRequest
    from pipeline.builders.backends.zig import ZigBackend
    from pipeline.fetch import pin_for_source
    from pipeline.unpack import unpack

    built: dict[tuple[str, str, str], Path] = {}

    def build(recipe_file: str, target: str, python: str) -> Path:
        key = (recipe_file, target, python)
        if key in built:
            return built[key]
        job = _job(REPO / "recipes" / recipe_file, target, python)
        backend = ZigBackend()
        reason = backend.unavailable_reason(job)
        if reason:
            unavailable(reason)
        source = job.recipe.source_for(job.version)
        pin = pin_for_source(source, job.recipe.name)
        sdist = pypi_file(pin.project, pin.version, pin.filename, pin.sha256)
        work = tmp_path_factory.mktemp(job.id)
        tree = next(unpack(sdist, work / "src").iterdir())
        started = time.monotonic()
        result = backend.build(
            BuildRequest(
                job=job, source_tree=tree, source_file=sdist, out_dir=work / "out", work_dir=work / "work"
            )
        )
        TIMINGS[job.id] = time.monotonic() - started
        assert len(result.wheels) == 1 and not result.repaired
        repaired_dir = work / "repaired"
        repair = subprocess.run(
            [
                sys.executable,
                "-m",
                "auditwheel",
                "repair",
                "--plat",
                "auto",
                "-w",
                str(repaired_dir),
                str(result.wheels[0]),
            ],
            capture_output=True,
            text=True,
            env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"},
        )
        assert repair.returncode == 0, repair.stderr[-2000:]
        (wheel,) = repaired_dir.glob("*.whl")
        print(f"\nzig build {job.id}: {TIMINGS[job.id]:.1f} s, {wheel.name} {wheel.stat().st_size} bytes")
        built[key] = wheel
        return wheel

    return build


@pytest.mark.parametrize(
    ("target", "tag", "machine", "soabi"),
    [
        ("musllinux_1_2_x86_64", "musllinux_1_2_x86_64", "EM_X86_64", "cpython-311-x86_64-linux-musl"),
        ("musllinux_1_2_aarch64", "musllinux_1_2_aarch64", "EM_AARCH64", "cpython-311-aarch64-linux-musl"),
        ("manylinux_2_17_aarch64", "manylinux_2_17_aarch64", "EM_AARCH64", "cpython-311-aarch64-linux-gnu"),
    ],
)
def test_markupsafe_cross_builds_repair_to_the_target_tag(zig_wheel, target, tag, machine, soabi) -> None:  # type: ignore[no-untyped-def]
    wheel = zig_wheel("markupsafe.toml", target, "3.11")
    assert wheel.name.startswith("markupsafe-2.1.5-cp311-cp311-")
    assert tag in wheel.name
    extensions = _extensions(wheel)
    assert list(extensions) == [f"markupsafe/_speedups.{soabi}.so"]
    data = extensions[f"markupsafe/_speedups.{soabi}.so"]
    assert _machine(data) == machine
    # Stripped: zig's unstripped output carries DWARF sections; the extension is ~9 KiB without them (musl
    # aarch64: +64 KiB, the page-aligned segment patchelf adds for the longer libc.musl-aarch64.so.1 name).
    assert b".debug_info" not in data
    assert len(data) < 96 * 1024


def test_musl_extension_needs_only_python_symbols_from_musl_loader(zig_wheel, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    wheel = zig_wheel("markupsafe.toml", "musllinux_1_2_x86_64", "3.11")
    need_toolset("musl")
    (name, data), *_ = _extensions(wheel).items()
    extension = tmp_path / Path(name).name
    extension.write_bytes(data)
    result = subprocess.run(
        ["/lib/ld-musl-x86_64.so.1", "--list", str(extension)], capture_output=True, text=True
    )
    output = result.stdout + result.stderr
    assert "libc.musl-x86_64.so.1 => /lib/ld-musl-x86_64.so.1" in output  # NEEDED renamed from zig's libc.so
    missing = [line.split(":")[-2].strip() for line in output.splitlines() if "symbol not found" in line]
    assert missing, output  # the Python C API is provided by the interpreter, so it must be reported missing
    assert all(symbol.startswith(("Py", "_Py")) for symbol in missing), missing


def _smoke_or_skip(wheel: Path, target: str, imports: list[str], command: str | None, *, build_runtime: bool):  # type: ignore[no-untyped-def]
    from pipeline.runtimes import runtimes_for_target
    from pipeline.smoke import smoke_wheel

    hosting = [r for r in runtimes_for_target(target) if hasattr(r, "python")]
    assert hosting, f"no runtime hosts {target}"
    if not any(r.exists() for r in hosting):
        ensure_runtime(hosting[0].name)  # built once, cached: CI must import for real, not skip
    return smoke_wheel(wheel, target, imports=imports, command=command)


def test_markupsafe_imports_on_musl_cpython(zig_wheel) -> None:  # type: ignore[no-untyped-def]
    wheel = zig_wheel("markupsafe.toml", "musllinux_1_2_x86_64", "3.11")
    result = _smoke_or_skip(
        wheel,
        "musllinux_1_2_x86_64",
        ["markupsafe._speedups"],
        "python -c \"import markupsafe; assert markupsafe.escape('<a>') == '&lt;a&gt;'\"",
        build_runtime=False,
    )
    assert result.status == "passed", result.message


def test_markupsafe_imports_on_arm64_under_qemu(zig_wheel) -> None:  # type: ignore[no-untyped-def]
    wheel = zig_wheel("markupsafe.toml", "manylinux_2_17_aarch64", "3.11")
    result = _smoke_or_skip(
        wheel,
        "manylinux_2_17_aarch64",
        ["markupsafe._speedups"],
        "python -c \"from markupsafe._speedups import escape; assert escape('<a>') == '&lt;a&gt;'\"",
        build_runtime=True,
    )
    if result.status == "cannot-host":
        unavailable(result.message)
    assert result.status == "passed", result.message


def test_cffi_with_target_built_libffi_stays_manylinux2014(zig_wheel) -> None:  # type: ignore[no-untyped-def]
    from elftools.elf.elffile import ELFFile

    from pipeline.recipe import load_recipe

    wheel = zig_wheel("cffi.toml", "manylinux_2_17_aarch64", "3.11")
    # Debian's libffi would have lifted this to manylinux_2_27; the target-built static one keeps 2014.
    assert wheel.name == "cffi-1.17.1-cp311-cp311-manylinux2014_aarch64.manylinux_2_17_aarch64.whl"
    extensions = _extensions(wheel)
    # Nothing bundled: no cffi.libs/ folder with a libffi copy.
    assert list(extensions) == ["_cffi_backend.cpython-311-aarch64-linux-gnu.so"], list(extensions)
    elf = ELFFile(io.BytesIO(extensions["_cffi_backend.cpython-311-aarch64-linux-gnu.so"]))
    symbols = {s.name for s in elf.get_section_by_name(".dynsym").iter_symbols()}
    assert "ffi_call" in symbols or "ffi_prep_cif" in symbols  # libffi is inside the extension
    versions = set()
    for _, aux in elf.get_section_by_name(".gnu.version_r").iter_versions():
        versions.update(a.name for a in aux)
    assert versions <= {"GLIBC_2.17"}, versions
    result = _smoke_or_skip(
        wheel,
        "manylinux_2_17_aarch64",
        ["_cffi_backend", "cffi"],
        load_recipe(REPO / "recipes" / "cffi.toml").test.command,
        build_runtime=True,
    )
    if result.status == "cannot-host":
        unavailable(result.message)
    assert result.status == "passed", result.message


def test_no_build_python_of_that_version_is_one_line(zig_available) -> None:  # type: ignore[no-untyped-def]
    from pipeline.builders.backends.zig import ZigBackend

    reason = ZigBackend().unavailable_reason(
        _job(REPO / "recipes" / "markupsafe.toml", "musllinux_1_2_x86_64", "3.99")
    )
    assert reason and "no CPython 3.99" in reason and "\n" not in reason


def test_windows_python_without_pc_pyconfig_is_refused(zig_available) -> None:  # type: ignore[no-untyped-def]
    """Windows builds need the CPython source's PC/pyconfig.h (tests/builders/backends/zig/test_windows_zig.py builds them)."""
    from pipeline.builders.backends.zig import ZigBackend

    reason = ZigBackend().unavailable_reason(_job(REPO / "recipes" / "markupsafe.toml", "win_amd64", "3.10"))
    assert reason and "PC/pyconfig.h" in reason


def test_rust_sdist_without_reachable_crates_says_what_is_missing(
    pypi_file, tmp_path: Path, zig_available, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """bcrypt 4.0.1 (setuptools-rust) ships only a Cargo.lock: the zig backend takes it on (Rust targets), and
    where its crates cannot be fetched the build stops before anything slow, with one line. CARGO_NET_OFFLINE
    (kept by rewheel: a user's "never fetch crates") makes that so where the crates registry is reachable."""
    from pipeline.builders.backends import BuildRequest
    from pipeline.builders.backends.zig import ZigBackend
    from pipeline.errors import RewheelError
    from pipeline.unpack import unpack

    need_toolset("rust")
    monkeypatch.setenv("CARGO_NET_OFFLINE", "true")
    sdist = pypi_file(*BCRYPT)
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "bcrypt.toml").write_text(
        'name = "bcrypt"\ntargets = ["musllinux_1_2_x86_64", "musllinux_1_2_armv7l"]\npython = ["3.11"]\n'
        f'[[source]]\nversion = "{BCRYPT[1]}"\nkind = "sdist"\nfilename = "{BCRYPT[2]}"\nsha256 = "{BCRYPT[3]}"\n',
        encoding="utf-8",
    )
    backend = ZigBackend()
    job = _job(recipes / "bcrypt.toml", "musllinux_1_2_x86_64", "3.11")
    assert backend.unavailable_reason(job) is None
    other = backend.unavailable_reason(_job(recipes / "bcrypt.toml", "musllinux_1_2_armv7l", "3.11"))
    assert other is not None and other.startswith("bcrypt 4.0.1 is Rust, which the zig backend builds for ")
    tree = next(unpack(sdist, tmp_path / "src").iterdir())
    started = time.monotonic()
    with pytest.raises(RewheelError) as refused:
        backend.build(BuildRequest(job, tree, sdist, tmp_path / "out", tmp_path / "work"))
    message = str(refused.value)
    assert "could not fetch those of src/_bcrypt/Cargo.lock" in message and "\n" not in message, message
    assert time.monotonic() - started < 60  # said before a std or crate build
    assert not (tmp_path / "out").exists()


def _sdist(tmp_path: Path, files: dict[str, str]) -> Path:
    archive = tmp_path / "demo-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"demo-1.0/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive


IN_TREE = (
    '[build-system]\nrequires = ["setuptools", "Cython"]\nbackend-path = ["packaging"]\n'
    'build-backend = "_pyyaml_pep517"\n'
)
SETUPTOOLS = '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'


@pytest.mark.parametrize(
    ("files", "musl", "expected"),
    [
        ({"pyproject.toml": SETUPTOOLS, "src/demo.c": ""}, True, None),
        # C++ is built with zig's static libc++ on every target, musl too.
        ({"pyproject.toml": SETUPTOOLS, "src/demo.cpp": "", "src/demo.c": ""}, True, None),
        ({"pyproject.toml": SETUPTOOLS, "src/demo.cpp": ""}, False, None),
        ({"pyproject.toml": SETUPTOOLS, "tests/helper.cpp": "", "src/demo.c": ""}, True, None),
        (
            {"pyproject.toml": SETUPTOOLS, "src/lapack.f90": ""},
            False,
            "needs a Fortran compiler (src/lapack.f90)",
        ),
        # Rust through maturin or setuptools-rust is built (zig/rust.py); behind another backend it is not.
        (
            {
                "pyproject.toml": '[build-system]\nrequires = ["maturin"]\nbuild-backend = "maturin"\n',
                "src/lib.rs": "",
            },
            False,
            None,
        ),
        (
            {
                "pyproject.toml": '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n',
                "Cargo.toml": "",
            },
            True,
            "needs a Rust toolchain behind the build backend 'hatchling.build'",
        ),
        (
            {"pyproject.toml": '[build-system]\nrequires = ["meson-python"]\nbuild-backend = "mesonpy"\n'},
            False,
            None,
        ),
        (
            {
                "pyproject.toml": '[build-system]\nrequires = ["scikit-build-core"]\nbuild-backend = "scikit_build_core.build"\n'
            },
            True,
            None,
        ),
        (
            {
                "pyproject.toml": '[build-system]\nrequires = ["flit_core"]\nbuild-backend = "flit_core.buildapi"\n',
                "x.c": "",
            },
            True,
            "uses the build backend 'flit_core.buildapi'",
        ),
        # An in-tree backend is what its module runs (PyYAML's _pyyaml_pep517 wraps setuptools.build_meta) ...
        (
            {
                "pyproject.toml": IN_TREE,
                "packaging/_pyyaml_pep517.py": "from setuptools.build_meta import *\n",
            },
            True,
            None,
        ),
        # ... and an in-tree backend that runs something else is refused by name.
        (
            {"pyproject.toml": IN_TREE, "packaging/_pyyaml_pep517.py": "import hatchling.build\n"},
            True,
            "uses the build backend '_pyyaml_pep517'",
        ),
        ({"setup.py": "from setuptools import setup\nsetup()\n", "demo.c": ""}, True, None),
    ],
)
def test_source_inspection(tmp_path: Path, files: dict[str, str], musl: bool, expected: str | None) -> None:
    from pipeline.source_inspect import cross_build_obstacle, list_source

    obstacle = cross_build_obstacle(list_source(_sdist(tmp_path, files)), musl=musl)
    if expected is None:
        assert obstacle is None
    else:
        assert obstacle is not None and expected in obstacle


def test_target_headers_differ_only_in_x86_lines(tmp_path: Path) -> None:
    from pipeline.builders.backends.zig.target_sysconfig import find_build_python, write_target_headers

    python = find_build_python("3.11")
    if python is None:
        unavailable("no CPython 3.11 with headers")
    assert python is not None
    host = (python.include_dir / "pyconfig.h").read_text().splitlines()
    arm = (
        (write_target_headers(python, "manylinux_2_17_aarch64", tmp_path) / "pyconfig.h")
        .read_text()
        .splitlines()
    )
    changed = {a for h, a in zip(host, arm, strict=True) if h != a}
    assert changed == {
        "/* #undef HAVE_GCC_ASM_FOR_X64 */",
        "/* #undef HAVE_GCC_ASM_FOR_X87 */",
        "#define PY_SUPPORT_TIER 2",
    }


def test_cli_build_with_zig_repairs_verifies_and_smokes(zig_available, tmp_path: Path, rewheel_exe) -> None:  # type: ignore[no-untyped-def]
    """The whole flow through the CLI: `rewheel build --backend zig` (orchestrator, auditwheel, verify, smoke)."""
    import json

    result = subprocess.run(
        [*rewheel_exe, "build", str(REPO / "recipes" / "markupsafe.toml"), "--backend", "zig",
         "--target", "manylinux_2_17_aarch64", "--python", "3.11", "--wheelhouse", str(tmp_path), "--json"],
        capture_output=True, text=True,
    )  # fmt: skip
    summary = json.loads(result.stdout)
    (job,) = summary["jobs"]
    assert job["backend"] == "zig", job
    assert job["status"] == "built", job.get("message")
    assert result.returncode == 0
    assert [Path(w).name for w in job["wheels"]] == [
        "markupsafe-2.1.5-cp311-cp311-manylinux2014_aarch64.manylinux_2_17_aarch64.whl"
    ]
    if job["smoke"] and job["smoke"][0].get("status") != "cannot-host":
        assert job["smoke"][0]["status"] == "passed", job["smoke"]


def test_cli_rust_recipe_fails_with_the_backends_one_line(pypi_file, tmp_path: Path, rewheel_exe) -> None:  # type: ignore[no-untyped-def]
    import json

    pypi_file(*BCRYPT)
    recipe = tmp_path / "recipes" / "bcrypt.toml"
    recipe.parent.mkdir()
    recipe.write_text(
        'name = "bcrypt"\ntargets = ["musllinux_1_2_armv7l"]\npython = ["3.11"]\n'
        f'[[source]]\nversion = "{BCRYPT[1]}"\nkind = "sdist"\nfilename = "{BCRYPT[2]}"\nsha256 = "{BCRYPT[3]}"\n',
        encoding="utf-8",
    )
    result = subprocess.run(
        [
            *rewheel_exe,
            "build",
            str(recipe),
            "--backend",
            "zig",
            "--wheelhouse",
            str(tmp_path / "wh"),
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1  # a failed job, not a crash
    assert "Traceback" not in result.stderr
    (job,) = json.loads(result.stdout)["jobs"]
    assert job["status"] == "failed" and job["stage"] == "select"
    # Rust is built for x86_64 and aarch64 targets, not armv7l (zig builds its C, not its Rust).
    assert "is Rust, which the zig backend builds for" in job["message"] and "\n" not in job["message"]
