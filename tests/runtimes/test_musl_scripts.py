"""The musl CPython build's shell scripts (pipeline/resources/musl-cpython/*.sh): filled in by
musl_cpython._script, checked by shellcheck, and run with sh (the exec'd tool is /bin/echo where the test
reads the command line a script builds, the real zig where it checks what the script is for)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import need_toolset, unavailable
from pipeline.runtimes import musl_cpython
from pipeline.runtimes._support import RuntimeBuildError
from pipeline.runtimes.musl_cpython import _script, _write_tool

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the musl builds run on Linux")

SCRIPTS = sorted(musl_cpython.SCRIPTS.glob("*.sh"))


def _run(script: Path, *args: str) -> str:
    return subprocess.run([str(script), *args], capture_output=True, text=True, check=True).stdout


def test_every_script_is_named_by_the_module_and_shipped() -> None:
    named = {
        musl_cpython.CC_WRAPPER,
        musl_cpython.ZIG_CC_WRAPPER,
        musl_cpython.ZIG_TOOL_WRAPPER,
        musl_cpython.ZIG_CPP_WRAPPER,
        musl_cpython.QEMU_WRAPPER,
        musl_cpython.DPKG_ARCHITECTURE_STUB,
    }
    assert {path.name for path in SCRIPTS} == named


def test_scripts_pass_shellcheck() -> None:
    need_toolset("shellcheck")
    for script in SCRIPTS:
        # SC2016: qemu-python.sh's inner `sh -c '...'` reads its own $1 and $2, passed after it.
        excluded = ["--exclude", "SC2016"] if script.name == musl_cpython.QEMU_WRAPPER else []
        done = subprocess.run(
            ["shellcheck", "--shell=sh", *excluded, str(script)], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout


def test_placeholders_and_values_must_match() -> None:
    with pytest.raises(
        RuntimeBuildError, match=r"zig-tool.sh: placeholders \['tool', 'zig'\], given \['zig'\]"
    ):
        _script(musl_cpython.ZIG_TOOL_WRAPPER, zig="/z")
    with pytest.raises(RuntimeBuildError, match="given"):
        _script(musl_cpython.DPKG_ARCHITECTURE_STUB, triplet="x", tripet="y")


def test_shell_variables_are_left_alone() -> None:
    text = _script(musl_cpython.ZIG_CC_WRAPPER, triplet="arm-linux-musleabihf", cpu="-mcpu=x", zig="/z/zig")
    assert "@" not in text.replace('"$@"', "")
    assert 'exec "/z/zig" cc -target arm-linux-musleabihf -mcpu=x -dynamic "$@"\n' in text
    assert 'case "$1" in' in text


def test_musl_cc_and_dpkg_architecture_answer_for_musl(tmp_path: Path) -> None:
    musl_cc = _write_tool(tmp_path / "musl-cc", _script(musl_cpython.CC_WRAPPER))
    assert _run(musl_cc, "--print-multiarch") == "x86_64-linux-musl\n"
    assert _run(musl_cc, "-print-multiarch") == "x86_64-linux-musl\n"
    stub = _write_tool(
        tmp_path / "dpkg-architecture",
        _script(musl_cpython.DPKG_ARCHITECTURE_STUB, triplet="aarch64-linux-musl"),
    )
    assert _run(stub, "-qDEB_HOST_MULTIARCH") == "aarch64-linux-musl\n"


def test_zig_cc_links_programs_dynamically_and_leaves_compiles_alone(tmp_path: Path) -> None:
    cc = _write_tool(
        tmp_path / "cc",
        _script(musl_cpython.ZIG_CC_WRAPPER, triplet="aarch64-linux-musl", cpu="", zig="/bin/echo"),
    )
    assert _run(cc, "--print-multiarch") == "aarch64-linux-musl\n"
    assert _run(cc, "-o", "python", "a.o") == "cc -target aarch64-linux-musl -dynamic -o python a.o\n"
    for mode in ("-c", "-E", "-shared"):
        assert _run(cc, "-O2", mode, "a.c") == f"cc -target aarch64-linux-musl -O2 {mode} a.c\n"
    tool = _write_tool(
        tmp_path / "ranlib", _script(musl_cpython.ZIG_TOOL_WRAPPER, zig="/bin/echo", tool="ranlib")
    )
    assert _run(tool, "libffi.a") == "ranlib libffi.a\n"


def test_zig_cpp_sees_musls_stdarg(tmp_path: Path) -> None:
    """The point of zig-cpp.sh: CPython 3.13's platform_triplet.c probe recognises musl by __DEFINED_va_list."""
    if musl_cpython._zig_missing():
        unavailable("needs ziglang")
    zig = musl_cpython._zig_executable()
    stdarg_dir = tmp_path / "musl-stdarg"
    stdarg_dir.mkdir()
    (stdarg_dir / "stdarg.h").write_bytes(musl_cpython._zig_musl_header(zig, "stdarg.h").read_bytes())
    cpp = _write_tool(
        tmp_path / "cpp",
        _script(
            musl_cpython.ZIG_CPP_WRAPPER,
            zig=zig,
            triplet="aarch64-linux-musl",
            cpu="",
            musl_stdarg_dir=stdarg_dir,
        ),
    )
    probe = tmp_path / "probe.c"
    probe.write_text("#include <stdarg.h>\n#ifdef __DEFINED_va_list\nmusl_stdarg\n#endif\n", encoding="utf-8")
    assert "musl_stdarg" in _run(cpp, str(probe)).split()


def test_qemu_wrapper_runs_the_guest_interpreter_with_its_sysroot(tmp_path: Path) -> None:
    prefix = tmp_path / "musl-cpython-3.11-aarch64"
    wrapper = _write_tool(
        prefix / "host-bin" / "python3.11",
        _script(
            musl_cpython.QEMU_WRAPPER,
            version="3.11",
            arch="aarch64",
            ldso="ld-musl-aarch64.so.1",
            qemu="/bin/echo",
            # an entry no machine has: the plain branch (the overlay branch needs root and binfmt_misc)
            binfmt_entry="rewheel-test-no-such-entry",
        ),
    )
    # Through a symlink, as smoke's shims call it: the wrapper finds its prefix by its real path.
    (tmp_path / "python").symlink_to(wrapper)
    real = prefix.resolve()
    expected = f"-L {real}/sysroot {real}/bin/python3.11 -c pass\n"
    assert _run(tmp_path / "python", "-c", "pass") == expected


@pytest.mark.parametrize("arch", ["x86_64", "aarch64", "armv7l"])
def test_write_tools_writes_runnable_scripts(arch: str, tmp_path: Path) -> None:
    """The build's own call site: the scripts land in tools/ executable, and the compiler answers for musl."""
    if arch != "x86_64" and musl_cpython._zig_missing():
        unavailable("needs ziglang")
    toolchain = musl_cpython.Toolchain(arch)
    if arch == "x86_64" and toolchain.cross:
        pytest.skip("the native musl-gcc toolchain is for x86_64 hosts")
    env = toolchain.write_tools(tmp_path / "tools")
    assert _run(Path(env["CC"]), "--print-multiarch") == f"{musl_cpython.musl_triplet(arch)}\n"
    assert _run(tmp_path / "tools" / "dpkg-architecture") == f"{musl_cpython.musl_triplet(arch)}\n"
    if toolchain.cross:
        assert {p.name for p in (tmp_path / "tools").iterdir()} == {
            "cc", "cpp", "ar", "ranlib", "dpkg-architecture", "musl-stdarg",
        }  # fmt: skip
