"""`rewheel smoke`: real wheels from PyPI imported on their targets' real runtimes (a musl CPython built here,
Debian's arm64 CPython under qemu-user, the host's CPython), failing with the loader's own message."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import ARM64, ARM64_313, MUSL_313, MUSL_313_AARCH64, MUSL_AARCH64, MUSL_DYNAMIC

MARKUPSAFE = "2.1.5"
WHEELS = {
    "musllinux": (
        "MarkupSafe-2.1.5-cp311-cp311-musllinux_1_1_x86_64.whl",
        "3a57fdd7ce31c7ff06cdfbf31dafa96cc533c21e443d57f5b1ecc6cdc668ec7f",
    ),
    "manylinux-x86_64": (
        "MarkupSafe-2.1.5-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "b91c037585eba9095565a3556f611e3cbfaa42ca1e865f7b8015fe5c7336d5a5",
    ),
    "manylinux-aarch64": (
        "MarkupSafe-2.1.5-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
        "6ec585f69cec0aa07d945b20805be741395e28ac1627333b1c5b0105962ffced",
    ),
    "cp312-manylinux-x86_64": (
        "MarkupSafe-2.1.5-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "f5dfb42c4604dddc8e4305050aa6deb084540643ed5804d7455b5df8fe16f5e5",
    ),
    "win_amd64": (
        "MarkupSafe-2.1.5-cp311-cp311-win_amd64.whl",
        "2b7c57a4dfc4f16f7142221afe5ba4e093e09e728ca65c51f5620c9aaeb9a617",
    ),
}


# Real upstream musllinux aarch64 wheels (C, C++ with a bundled libstdc++, Rust), pinned by sha256.
MUSL_AARCH64_WHEELS = {
    "markupsafe": (
        "MarkupSafe", "2.1.5", "MarkupSafe-2.1.5-cp311-cp311-musllinux_1_1_aarch64.whl",
        "0e397ac966fdf721b2c528cf028494e86172b4feba51d65f81ffd65c63798f3f",
    ),
    "msgpack": (
        "msgpack", "1.0.8", "msgpack-1.0.8-cp311-cp311-musllinux_1_1_aarch64.whl",
        "dfe1f0f0ed5785c187144c46a292b8c34c1295c01da12e10ccddfc16def4448a",
    ),
    "ujson": (
        "ujson", "5.10.0", "ujson-5.10.0-cp311-cp311-musllinux_1_2_aarch64.whl",
        "7ec0ca8c415e81aa4123501fee7f761abf4b7f386aad348501a26940beb1860f",
    ),
    "orjson": (
        "orjson", "3.10.15", "orjson-3.10.15-cp311-cp311-musllinux_1_2_aarch64.whl",
        "d569c1c462912acdd119ccbf719cf7102ea2c67dd03b99edcb1a3048651ac96b",
    ),
}  # fmt: skip
# The same kinds for CPython 3.13 (markupsafe's cp313 aarch64 wheel is in MARKUPSAFE_313 below).
MUSL_AARCH64_313_WHEELS = {
    "msgpack": (
        "msgpack", "1.1.0", "msgpack-1.1.0-cp313-cp313-musllinux_1_2_aarch64.whl",
        "7a946a8992941fea80ed4beae6bff74ffd7ee129a90b4dd5cf9c476a30e9708d",
    ),
    "ujson": (
        "ujson", "5.10.0", "ujson-5.10.0-cp313-cp313-musllinux_1_2_aarch64.whl",
        "2a890b706b64e0065f02577bf6d8ca3b66c11a5e81fb75d757233a38c07a1f20",
    ),
    "orjson": (
        "orjson", "3.10.15", "orjson-3.10.15-cp313-cp313-musllinux_1_2_aarch64.whl",
        "7946922ada8f3e0b7b958cc3eb22cfcf6c0df83d1fe5521b4a100103e3fa84c8",
    ),
}  # fmt: skip
PILLOW_GLIBC_AARCH64 = {
    "3.11": (
        "pillow", "10.4.0", "pillow-10.4.0-cp311-cp311-manylinux_2_28_aarch64.whl",
        "bbc527b519bd3aa9d7f429d152fea69f9ad37c95f0b02aebddff592688998abe",
    ),
    "3.13": (
        "pillow", "11.0.0", "pillow-11.0.0-cp313-cp313-manylinux_2_28_aarch64.whl",
        "61b887f9ddba63ddf62fd02a3ba7add935d053b6dd7d58998c630e6dbade8527",
    ),
}  # fmt: skip
# The musl aarch64 runtime of each Python: (fixture, name).
MUSL_AARCH64_RUNTIMES = {
    "3.11": ("musl_aarch64", MUSL_AARCH64),
    "3.13": ("musl_313_aarch64", MUSL_313_AARCH64),
}
MARKUPSAFE_313 = {
    "musllinux_1_2_x86_64": (
        "MarkupSafe-3.0.2-cp313-cp313-musllinux_1_2_x86_64.whl",
        "444dcda765c8a838eaae23112db52f1efaf750daddb2d9ca300bcae1039adc5c",
    ),
    "musllinux_1_2_aarch64": (
        "MarkupSafe-3.0.2-cp313-cp313-musllinux_1_2_aarch64.whl",
        "cdb82a876c47801bb54a690c5ae105a46b392ac6099881cdfb9f6e95e4014c6a",
    ),
    "manylinux_2_17_aarch64": (
        "MarkupSafe-3.0.2-cp313-cp313-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
        "569511d3b58c8791ab4c2e1285575265991e6d8f8700c7be0e88f86cb0672094",
    ),
}
# musl's loader on a glibc wheel: the first glibc-only library it misses (libz.so.1 when the runtime has no
# shared zlib, else glibc's own loader, which the wheel's bundled libraries name)
GLIBC_ONLY = re.compile(
    r"ImportError: Error loading shared library (libz\.so\.1|ld-linux-[\w-]+\.so\.\d): No such file or directory"
)
ESCAPE_CHECK = "python -c \"import markupsafe; assert markupsafe.escape('<a>') == '&lt;a&gt;'\""


@pytest.fixture(scope="session")
def markupsafe(pypi_file):  # type: ignore[no-untyped-def]
    def get(kind: str) -> Path:
        filename, sha256 = WHEELS[kind]
        return pypi_file("MarkupSafe", MARKUPSAFE, filename, sha256)

    return get


def smoke_json(run_cli, *args: str) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    code, out, err = run_cli("smoke", "--json", *args)
    assert out, err
    results = json.loads(out)["results"]
    assert len(results) == 1
    return code, results[0]


# ---------------------------------------------------------------------------------------------------------
# What needs no built runtime


def test_manylinux_x86_64_wheel_imports_on_the_host_cpython(run_cli, markupsafe, runtime_env) -> None:
    code, result = smoke_json(run_cli, str(markupsafe("manylinux-x86_64")))
    assert code == 0, result
    assert result["status"] == "passed" and result["target"] == "manylinux_2_17_x86_64"
    assert result["runtime"] == "host-cpython-3.11-x86_64"
    assert result["imported"] == ["markupsafe", "markupsafe._speedups"]


def test_windows_wheel_cannot_be_hosted_exit_3(run_cli, markupsafe, runtime_env) -> None:
    """win_arm64 has no runtime here (wine runs amd64 Windows CPythons: see test_windows_runtime.py)."""
    code, result = smoke_json(run_cli, str(markupsafe("win_amd64")), "--target", "win_arm64")
    assert code == 3
    assert result["status"] == "cannot-host" and result["runtime"] is None
    assert "Windows" in result["message"]


def test_python_version_must_match_the_tag(run_cli, markupsafe, runtime_env) -> None:
    """A cp312 wheel on the musl target: the musl 3.12 runtime builds from python.org's source, which this
    machine cannot fetch; smoke says exactly that (exit 3), and --require-import makes it a failure (exit 1)."""
    from pipeline.runtimes import get_runtime

    if get_runtime("musl-cpython-3.12-x86_64").unavailable_reason() is None:
        pytest.skip("this machine reaches python.org: the musl 3.12 runtime can be built here")
    wheel = markupsafe("cp312-manylinux-x86_64")
    code, result = smoke_json(run_cli, str(wheel), "--target", "musllinux_1_2_x86_64")
    assert code == 3
    assert result["status"] == "cannot-host"
    assert result["message"].startswith(
        "musl-cpython-3.12-x86_64 cannot be built here: python.org's Python-3.12.12.tar.xz cannot be fetched "
        "from this machine"
    )
    code, result = smoke_json(run_cli, str(wheel), "--target", "musllinux_1_2_x86_64", "--require-import")
    assert code == 1 and result["status"] == "cannot-host"


def test_require_import_fails_what_cannot_be_hosted(run_cli, markupsafe, runtime_env) -> None:
    code, out, err = run_cli(
        "smoke", "--require-import", "--target", "win_arm64", str(markupsafe("win_amd64"))
    )
    assert code == 1
    assert out.startswith("CANNOT-HOST") and "0/1 imported" in err


def test_unusable_input_is_exit_2(run_cli, tmp_path, runtime_env) -> None:
    bogus = tmp_path / "not-a-wheel.whl"
    bogus.write_bytes(b"nope")
    code, _, err = run_cli("smoke", str(bogus))
    assert code == 2 and err.startswith("rewheel: error:") and err.strip().count("\n") == 0
    code, _, err = run_cli("smoke", str(tmp_path / "missing-1.0-py3-none-any.whl"))
    assert code == 2 and "no such wheel" in err


def test_module_discovery_covers_packages_and_extensions() -> None:
    from pipeline.smoke import modules_to_import

    files = [
        "cffi/__init__.py",
        "cffi/api.py",
        "_cffi_backend.cpython-311-x86_64-linux-musl.so",
        "pkg/sub/_ext.cpython-311-aarch64-linux-gnu.so",
        "pkg/__init__.py",
        "cffi-1.17.1.dist-info/RECORD",
        "cffi.libs/libffi-abc.so.8.1.0",
        "six.py",
    ]
    assert modules_to_import(files) == ["_cffi_backend", "cffi", "pkg", "six", "pkg.sub._ext"]


# ---------------------------------------------------------------------------------------------------------
# On built runtimes


@pytest.mark.slow
def test_musllinux_wheel_imports_on_musl_cpython(run_cli, markupsafe, musl_dynamic) -> None:
    code, result = smoke_json(run_cli, str(markupsafe("musllinux")))
    assert code == 0, result
    # The wheel's own (oldest) level is the target; the musl 1.2 interpreter hosts the older musllinux_1_1.
    assert result["target"] == "musllinux_1_1_x86_64"
    assert result["runtime"] == MUSL_DYNAMIC
    assert result["imported"] == ["markupsafe", "markupsafe._speedups"]


@pytest.mark.slow
def test_glibc_wheel_fails_on_musl_with_the_loaders_message(run_cli, pypi_file, musl_dynamic) -> None:
    """Pillow's manylinux wheel needs what only a glibc system has: the system's libz.so.1 (which manylinux
    guarantees; a musl runtime may offer it too, as musllinux's policy allows) and, in the libraries it bundles,
    glibc's own loader ld-linux-x86-64.so.2. musl's loader says so, naming the file that needs it."""
    wheel = pypi_file(
        "pillow",
        "10.4.0",
        "pillow-10.4.0-cp311-cp311-manylinux_2_28_x86_64.whl",
        "76a911dfe51a36041f2e756b00f96ed84677cdeb75d25c767f296c1c1eda1319",
    )
    code, result = smoke_json(run_cli, str(wheel), "--target", "musllinux_1_2_x86_64")
    assert code == 1
    assert result["status"] == "failed" and result["runtime"] == MUSL_DYNAMIC
    failures = {f["module"]: f["error"] for f in result["failures"]}
    imaging = failures["PIL._imaging"]
    # musl's dynamic loader, in its own words (a linux-gnu suffix is handed to the loader all the same)
    assert GLIBC_ONLY.match(imaging), imaging
    assert "(needed by " in imaging and ("/site/PIL/" in imaging or "/pillow.libs/lib" in imaging)
    assert result["message"].startswith("PIL._imaging: ImportError: Error loading shared library ")


@pytest.mark.slow
def test_glibc_wheel_using_only_what_musl_has_loads(run_cli, markupsafe, musl_dynamic) -> None:
    """The other side: musl maps libc.so.6 to itself, so MarkupSafe's glibc build, which needs nothing
    else, really does load there - smoke reports what the loader does, not what the tag suggests."""
    code, result = smoke_json(
        run_cli, str(markupsafe("manylinux-x86_64")), "--target", "musllinux_1_2_x86_64"
    )
    assert code == 0, result
    assert result["imported"] == ["markupsafe", "markupsafe._speedups"]


@pytest.mark.slow
def test_manylinux_aarch64_wheel_imports_under_qemu_and_runs_a_command(run_cli, markupsafe, arm64) -> None:
    wheel = str(markupsafe("manylinux-aarch64"))
    check = "python -c \"import platform, markupsafe; assert platform.machine() == 'aarch64'; print(markupsafe.escape('<'))\""
    code, result = smoke_json(run_cli, wheel, "--command", check)
    assert code == 0, result
    assert result["runtime"] == ARM64 and result["imported"] == ["markupsafe", "markupsafe._speedups"]
    code, result = smoke_json(
        run_cli, wheel, "--import", "markupsafe._speedups", "--command", "python -c 'import nope'"
    )
    assert code == 1
    assert result["failures"] == [
        {"command": "python -c 'import nope'", "error": "ModuleNotFoundError: No module named 'nope'"}
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    "python, project",
    [("3.11", project) for project in sorted(MUSL_AARCH64_WHEELS)]
    + [("3.13", project) for project in sorted(MUSL_AARCH64_313_WHEELS)],
)
def test_upstream_musllinux_aarch64_wheels_import_under_qemu(
    run_cli, pypi_file, request, python, project
) -> None:  # type: ignore[no-untyped-def]
    """Upstream's own musllinux aarch64 wheels (C: markupsafe, msgpack; C++ with its bundled libstdc++: ujson;
    Rust: orjson) import on the musl aarch64 CPython of their Python under qemu-user, and work."""
    fixture, runtime_name = MUSL_AARCH64_RUNTIMES[python]
    request.getfixturevalue(fixture)
    wheels = MUSL_AARCH64_WHEELS if python == "3.11" else MUSL_AARCH64_313_WHEELS
    wheel = pypi_file(*wheels[project])
    module = {"markupsafe": "markupsafe", "msgpack": "msgpack", "ujson": "ujson", "orjson": "orjson"}[project]
    use = {
        "markupsafe": "markupsafe.escape('<') == '&lt;'",
        "msgpack": "msgpack.unpackb(msgpack.packb([1, 'a'])) == [1, 'a']",
        "ujson": "ujson.loads(ujson.dumps({'a': [1.5]})) == {'a': [1.5]}",
        "orjson": "orjson.loads(orjson.dumps({'a': 1})) == {'a': 1}",
    }[project]
    check = f"python -c \"import platform, {module}; assert platform.machine() == 'aarch64'; assert {use}\""
    code, result = smoke_json(run_cli, str(wheel), "--require-import", "--command", check)
    assert code == 0, result
    assert result["target"] in ("musllinux_1_1_aarch64", "musllinux_1_2_aarch64")  # the wheel's own level
    assert result["runtime"] == runtime_name
    assert module in result["imported"]


@pytest.mark.slow
@pytest.mark.parametrize("python", sorted(PILLOW_GLIBC_AARCH64))
def test_glibc_aarch64_wheel_fails_on_musl_aarch64_with_musls_loader_message(
    run_cli, pypi_file, request, python
) -> None:  # type: ignore[no-untyped-def]
    """Pillow's manylinux (glibc) aarch64 wheel relies on the system's libz.so.1 and on glibc's loader, which
    musl systems lack: musl's loader, under qemu, says so in its own words, naming the file that needs it.
    (orjson's glibc
    build, by contrast, really does load on musl: smoke reports what the loader does.)"""
    fixture, runtime_name = MUSL_AARCH64_RUNTIMES[python]
    request.getfixturevalue(fixture)
    wheel = pypi_file(*PILLOW_GLIBC_AARCH64[python])
    code, result = smoke_json(run_cli, str(wheel), "--target", "musllinux_1_2_aarch64")
    assert code == 1
    assert result["status"] == "failed" and result["runtime"] == runtime_name
    error = {f["module"]: f["error"] for f in result["failures"]}["PIL._imaging"]
    assert GLIBC_ONLY.match(error), error
    assert "(needed by " in error and ("/site/PIL/" in error or "/pillow.libs/lib" in error)


@pytest.mark.slow
@pytest.mark.parametrize(
    "target, runtime_fixture, runtime_name",
    [
        ("musllinux_1_2_x86_64", "musl_313", MUSL_313),
        ("musllinux_1_2_aarch64", "musl_313_aarch64", MUSL_313_AARCH64),
        ("manylinux_2_17_aarch64", "arm64_313", ARM64_313),
    ],
)
def test_cp313_wheels_import_on_their_313_runtimes(
    run_cli, pypi_file, request, target, runtime_fixture, runtime_name
) -> None:  # type: ignore[no-untyped-def]
    request.getfixturevalue(runtime_fixture)
    filename, sha256 = MARKUPSAFE_313[target]
    wheel = pypi_file("MarkupSafe", "3.0.2", filename, sha256)
    code, result = smoke_json(run_cli, str(wheel), "--require-import", "--command", ESCAPE_CHECK)
    assert code == 0, result
    assert result["target"] == target and result["runtime"] == runtime_name
    assert result["imported"] == ["markupsafe", "markupsafe._speedups"]


@pytest.mark.slow
def test_build_require_import_fails_a_job_whose_wheel_cannot_be_imported(
    rewheel_exe, runtime_env, tmp_path
) -> None:
    """`rewheel build --require-import`: a cp312 musllinux wheel builds and verifies, but no runtime here can
    import it (no CPython 3.12 source), so the job fails (exit 1) and names why; the wheel is quarantined."""
    import os
    import subprocess

    from conftest import REPO, need_toolset

    need_toolset("musl")
    wheelhouse = tmp_path / "wheelhouse"
    result = subprocess.run(
        [*rewheel_exe, "build", str(REPO / "recipes" / "markupsafe.toml"), "--target", "musllinux_1_2_x86_64",
         "--python", "3.12", "--backend", "zig", "--require-import", "--wheelhouse", str(wheelhouse), "--json"],
        capture_output=True, text=True, timeout=900, env={**os.environ},
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-2000:]
    (outcome,) = json.loads(result.stdout)["jobs"]
    assert outcome["status"] == "quarantined" and outcome["stage"] == "smoke"
    assert (
        "not imported (--require-import): cannot-host: musl-cpython-3.12-x86_64 cannot be built here: "
        "python.org's Python-3.12.12.tar.xz cannot be fetched" in outcome["message"]
    )
    assert not list(wheelhouse.glob("*.whl")) and list((wheelhouse / "quarantine").rglob("*.whl"))


# ---------------------------------------------------------------------------------------------------------
# What a user would import: dependencies for the target, extra requirements, the test command apart


def test_dependencies_follow_the_targets_markers_not_the_hosts() -> None:
    """Requires-Dist markers are evaluated for the target's platform and the runtime's Python, with no
    extras: what pip on that target installs."""
    from packaging.requirements import Requirement

    from pipeline.smoke_dependencies import applicable, marker_environment
    from pipeline.targets import get_target

    requirements = [
        Requirement(text)
        for text in (
            "numpy>=1.23",
            "pywin32>=300; sys_platform == 'win32'",
            "colorama; platform_system == 'Windows' and platform_machine == 'AMD64'",
            "uvloop; sys_platform != 'win32' and platform_machine == 'aarch64'",
            "tomli; python_version < '3.11'",
            "cffi>=1.17; extra == 'cffi'",
            "exceptiongroup; python_full_version < '3.11.0'",
        )
    ]

    def names(target: str, python: str) -> list[str]:
        environment = marker_environment(get_target(target), python)
        return [r.name for r in applicable(requirements, environment)]

    assert names("win_amd64", "3.11") == ["numpy", "pywin32", "colorama"]
    assert names("musllinux_1_2_aarch64", "3.11") == ["numpy", "uvloop"]
    assert names("musllinux_1_2_x86_64", "3.10") == ["numpy", "tomli", "exceptiongroup"]


def test_a_failing_test_command_is_reported_apart_from_the_imports(run_cli, markupsafe, runtime_env) -> None:
    """The imports succeed, the command fails: the line says both, and never "0/1 imported"."""
    wheel = str(markupsafe("manylinux-x86_64"))
    code, out, err = run_cli("smoke", wheel, "--command", "python -c 'import nope'")
    assert code == 1
    assert out.startswith("FAILED") and "imported 2/2; test command failed: ModuleNotFoundError" in out
    assert "1/1 imported; test command passed 0/1" in err and "0/1 imported" not in err
    code, result = smoke_json(run_cli, wheel, "--command", "python -c 'import nope'")
    assert result["command"] == {
        "command": "python -c 'import nope'",
        "ran": True,
        "ok": False,
        "error": "ModuleNotFoundError: No module named 'nope'",
    }
    assert result["imported"] == ["markupsafe", "markupsafe._speedups"]
    code, result = smoke_json(run_cli, wheel)
    assert code == 0 and result["command"]["ran"] is False and result["skipped"] == []


def test_with_adds_requirements_pinned_or_resolved(run_cli, markupsafe, runtime_env) -> None:
    """`--with REQ`: a line pinned by hash is fetched by that hash; an unpinned one is resolved for the target
    (every file by the sha256 the index lists). Either way the test command finds it."""
    wheel = str(markupsafe("manylinux-x86_64"))
    # the host CPython has its own six in site-packages: the importer must not see it
    code, result = smoke_json(run_cli, wheel, "--import", "markupsafe", "--import", "six")
    assert code == 1 and result["failures"] == [
        {"module": "six", "error": "ModuleNotFoundError: No module named 'six'"}
    ]
    pinned = "six==1.16.0 --hash=sha256:8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254"
    code, result = smoke_json(run_cli, wheel, "--with", pinned, "--import", "markupsafe", "--import", "six")
    assert code == 0, result
    assert result["dependencies"] == ["six==1.16.0"] and result["imported"] == ["markupsafe", "six"]
    check = "python -c 'import six; assert six.__version__ == \"1.17.0\"'"
    code, result = smoke_json(run_cli, wheel, "--with", "six==1.17.0", "--import", "six", "--command", check)
    assert code == 0, result
    assert result["dependencies"] == ["six==1.17.0"] and result["command"]["ok"] is True
    code, _, err = run_cli("smoke", wheel, "--with", "no-such-project-rewheel==1.0 --hash=sha256:" + "0" * 64)
    assert code == 2
    assert err.splitlines()[-1].startswith("rewheel: error: smoke requirements for manylinux_2_17_x86_64")


@pytest.mark.slow
def test_pandas_finds_numpy_as_pip_would_install_it(run_cli, pypi_file, runtime_env) -> None:
    """pandas declares numpy, python-dateutil, pytz and tzdata: smoke installs them for the target (here the
    host's manylinux x86_64 CPython), so every pandas extension imports."""
    wheel = pypi_file(
        "pandas",
        "2.2.3",
        "pandas-2.2.3-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "c124333816c3a9b03fbeef3a9f230ba9a737e9e5bb4060aa2107a86cc0a497fc",
    )
    code, result = smoke_json(run_cli, str(wheel))
    assert code == 0, result
    names = {d.split("==")[0].lower() for d in result["dependencies"]}
    assert {"numpy", "python-dateutil", "pytz", "tzdata"} <= names, result["dependencies"]
    assert "pandas._libs.lib" in result["imported"] and not result["failures"]
    # held to a resolved set (what build -r passes for the wheelhouse it publishes): that numpy, not the newest
    from pipeline.smoke import smoke_wheel

    held = smoke_wheel(wheel, imports=["pandas"], constraints=["numpy==2.2.6"])
    assert held.ok, held.message
    assert "numpy==2.2.6" in held.dependencies, held.dependencies


def test_pth_folders_are_import_roots(tmp_path) -> None:
    """pywin32's .pth puts win32, win32\\lib and Pythonwin on sys.path: their extensions import by their own
    names there (win32api, not win32.win32api), and only extensions, as a user imports them."""
    from pipeline.smoke import extension_files, modules_to_import, pth_roots

    files = [
        "pywin32.pth",
        "win32/win32api.pyd",
        "win32/lib/win32con.py",
        "win32/lib/pywin32_bootstrap.py",
        "pythonwin/win32ui.pyd",
        "pythonwin/pywin/__init__.py",
        "win32com/__init__.py",
        "pythoncom.py",
    ]
    (tmp_path / "pywin32.pth").write_text(
        "# .pth file for the PyWin32 extensions\nwin32\nwin32\\lib\nPythonwin\nimport pywin32_bootstrap\n"
    )
    roots = pth_roots(tmp_path, files)
    assert roots == ["win32", "win32/lib", "pythonwin"]
    assert modules_to_import(files, roots) == ["pythoncom", "win32api", "win32com", "win32ui"]
    assert extension_files(files, roots) == {
        "win32api": "win32/win32api.pyd",
        "win32ui": "pythonwin/win32ui.pyd",
    }


@pytest.mark.slow
def test_dependencies_that_cannot_be_had_are_cannot_host_not_failed(
    run_cli, markupsafe, runtime_env, monkeypatch, tmp_path
) -> None:
    """An index that refuses connections: the requirement cannot be installed, so the import that needs it is
    not the wheel's failure (pip would have installed it): cannot-host, exit 3, with the resolver's reason.
    A wheelhouse given with --find-links then supplies it."""
    import shutil

    from helpers.index import SIX
    from pipeline.fetch import Pin, fetch

    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # port 9 (discard): nothing listens
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    wheel = str(markupsafe("manylinux-x86_64"))
    code, result = smoke_json(run_cli, wheel, "--with", "six==1.16.0", "--import", "six")
    assert code == 3, result
    assert result["status"] == "cannot-host" and result["failures"] == []
    assert result["message"].startswith("the wheel's dependencies could not be installed here: ")
    (limit,) = result["runtime_limits"]
    assert limit["module"] == "six" and limit["missing"] == "six"
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    shutil.copy(fetch(Pin(SIX[2], SIX[3], project=SIX[0], version=SIX[1])), wheelhouse)
    monkeypatch.setenv("PIP_INDEX_URL", f"{(tmp_path / 'empty-index').as_uri()}")
    (tmp_path / "empty-index").mkdir()
    code, result = smoke_json(
        run_cli, wheel, "--with", "six==1.16.0", "--import", "six", "--find-links", str(wheelhouse)
    )
    assert code == 0, result
    assert result["dependencies"] == ["six==1.16.0"] and result["imported"] == ["six"]


def test_a_circular_import_of_a_module_smoke_chose_is_skipped_not_failed() -> None:
    """scipy 1.16.3's scipy.linalg._matfuncs_sqrtm_triu cannot be imported directly on any machine (its init
    imports a module that imports it back), while `import scipy.linalg` works: smoke skips it with the reason when
    it chose the module itself; a recipe's own [test] imports stay strict."""
    from pipeline.runtimes import all_runtimes
    from pipeline.smoke import SmokeResult, _judge_imports

    runtime = all_runtimes()["debian-arm64-python3.11"]  # the one smoke uses for manylinux aarch64 cp311
    error = (
        "ImportError: cannot import name 'within_block_loop' from partially initialized module "
        "'scipy.linalg._matfuncs_sqrtm_triu' (most likely due to a circular import) (/tmp/x/site/scipy/linalg/"
        "_matfuncs_sqrtm_triu.cpython-311-aarch64-linux-gnu.so)"
    )
    for chosen_here in (True, False):
        result = SmokeResult(wheel="scipy.whl", target="manylinux_2_28_aarch64", status="failed")
        result.failures = [{"module": "scipy.linalg._matfuncs_sqrtm_triu", "error": error}]
        _judge_imports(result, runtime, {"scipy"}, set(), chosen_here, None)
        if chosen_here:
            assert result.failures == [] and "circular import" in result.skipped[0]["reason"]
        else:
            assert result.failures and not result.skipped
    # another module's circular import (raised while importing this one) is this module's failure
    result = SmokeResult(wheel="x.whl", target="manylinux_2_28_aarch64", status="failed")
    result.failures = [{"module": "pkg.a", "error": error}]
    _judge_imports(result, runtime, {"pkg"}, set(), True, None)
    assert result.failures and not result.skipped


@pytest.mark.slow
def test_the_musl_runtime_has_what_wheels_import_at_import_time(run_cli, markupsafe, musl_dynamic) -> None:
    """Like Alpine's python3, rewheel's musl CPythons have _sqlite3, _bz2 and _lzma besides ssl, ctypes,
    decimal and zlib: a wheel whose modules import them passes smoke there, with no runtime limit in play
    (tests/runtimes/test_musl_stdlib.py makes each of them work)."""
    wheel = str(markupsafe("musllinux"))
    modules = ("sqlite3", "bz2", "lzma", "ssl", "ctypes", "_decimal", "zlib")
    code, result = smoke_json(
        run_cli, wheel, "--target", "musllinux_1_2_x86_64", *[a for m in modules for a in ("--import", m)]
    )
    assert code == 0 and result["status"] == "passed" and result["runtime"] == MUSL_DYNAMIC, result
    assert result["runtime_limits"] == [], result
