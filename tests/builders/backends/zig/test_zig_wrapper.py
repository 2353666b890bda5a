"""The zig compiler wrapper (pipeline/builders/backends/zig/wrapper.py): its argument rewriting through the
function seam `compiler_command`, and the entry points write_toolchain makes of it, run for real (a refusal,
a compile and an archive with the real zig)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import unavailable
from pipeline.builders.backends.zig import toolchain, wrapper

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the zig backend runs on Linux hosts"
)

CONFIG = {
    "target": "musllinux_1_2_x86_64",
    "triple": "x86_64-linux-musl",
    "zig": "/opt/zig/zig",
    "host_includes": ["/usr/include/python3.11"],
    "target_include": "/work/target/include/python3.11",
    "musl_soname": "libc.musl-x86_64.so.1",
    "patchelf": "/opt/patchelf",
    "compile_flags": ["-DTARGET_FLAG"],
    "link_flags": ["-lpython3.11"],
    "dropped_flags": ["-fPIC"],
    "windows": False,
    "lenient_flags": ["-Wno-error=int-conversion"],
    "strict_variable": "ZIGCC_STRICT_C",
}


def test_compile_gets_the_target_headers_flags_and_triple() -> None:
    job = wrapper.compiler_command(
        CONFIG, "cc", ["-I/usr/include/python3.11", "-fPIC", "-c", "a.c", "-o", "a.o"], {}
    )
    assert job.command == [
        "/opt/zig/zig",
        "cc",
        "-target",
        "x86_64-linux-musl",
        "-DTARGET_FLAG",
        "-Wno-error=int-conversion",
        "-I/work/target/include/python3.11",
        "-c",
        "a.c",
        "-o",
        "a.o",
    ]
    assert not job.linking_shared
    assert job.output == "a.o"


def test_separate_include_argument_is_redirected_and_strict_c_drops_the_lenient_flags() -> None:
    job = wrapper.compiler_command(
        CONFIG, "cc", ["-I", "/usr/include/python3.11", "-c", "a.c"], {"ZIGCC_STRICT_C": "1"}
    )
    assert job.command[4:] == ["-DTARGET_FLAG", "-I", "/work/target/include/python3.11", "-c", "a.c"]


def test_shared_link_is_stripped_gets_link_flags_and_loses_the_host_rpath() -> None:
    job = wrapper.compiler_command(
        CONFIG, "cc", ["-shared", "a.o", "-Wl,-rpath,/opt/lib", "-Wl,-rpath,/usr/lib", "-oext.so"], {}
    )
    assert job.linking_shared
    assert job.output == "ext.so"
    # an rpath under the host Python's prefix (its include dir minus /include) goes; another stays.
    assert job.command[4:] == [
        "-DTARGET_FLAG",
        "-Wno-error=int-conversion",
        "-shared",
        "a.o",
        "-Wl,-rpath,/opt/lib",
        "-oext.so",
        "-s",
        "-lpython3.11",
    ]


def test_cxx_through_cc_becomes_zig_cxx(tmp_path: Path) -> None:
    assert wrapper.compiler_command(CONFIG, "cc", ["-c", "x.CPP"], {}).command[1] == "c++"
    plain = tmp_path / "plain.o"
    plain.write_bytes(b"\x7fELF main printf")
    cxx = tmp_path / "cxx.o"
    cxx.write_bytes(b"\x7fELF _Znwm __gxx_personality_v0")
    assert wrapper.compiler_command(CONFIG, "cc", ["-shared", str(plain)], {}).command[1] == "cc"
    assert wrapper.compiler_command(CONFIG, "cc", ["-shared", str(plain), str(cxx)], {}).command[1] == "c++"
    assert wrapper.compiler_command(CONFIG, "cc", ["-shared", "-nostdlib++", str(cxx)], {}).command[1] == "cc"


@pytest.mark.parametrize("args", [["-L/usr/lib/x86_64-linux-gnu"], ["-L", "/lib64"], ["-L/usr/local/lib"]])
def test_host_library_folder_is_refused(args: list[str]) -> None:
    with pytest.raises(wrapper.HostLibraryFolder, match=r"-L/.*musllinux_1_2_x86_64"):
        wrapper.compiler_command(CONFIG, "cc", [*args, "a.o"], {})


def test_other_library_folders_pass() -> None:
    job = wrapper.compiler_command(CONFIG, "cc", ["-L/work/libs", "-L/usr/library", "a.o"], {})
    assert "-L/work/libs" in job.command and "-L/usr/library" in job.command


def test_unknown_entry_point_name_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert wrapper.main([str(tmp_path / "gcc"), "-c", "a.c"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.fixture(scope="module")
def entry_points(tmp_path_factory: pytest.TempPathFactory) -> toolchain.Toolchain:
    try:
        toolchain.zig_executable()
        toolchain.patchelf_executable()
    except Exception as exc:
        unavailable(str(exc))
    return toolchain.write_toolchain(
        "musllinux_1_2_x86_64",
        tmp_path_factory.mktemp("zig-bin"),
        host_includes=["/usr/include/python3.11"],
        target_include=Path("/nonexistent/include"),
    )


def test_entry_points_are_the_module_run_by_the_build_python(entry_points: toolchain.Toolchain) -> None:
    source = toolchain.WRAPPER_SOURCE.read_text(encoding="utf-8")
    for path in (entry_points.cc, entry_points.cxx, entry_points.ar, entry_points.ranlib, entry_points.strip):
        first, body = path.read_text(encoding="utf-8").split("\n", 1)
        assert first == f"#!{sys.executable} -IS"
        assert body == source.split("\n", 1)[1]
    config = json.loads((entry_points.bin_dir / wrapper.CONFIG_NAME).read_text(encoding="utf-8"))
    assert config["triple"] == "x86_64-linux-musl"
    assert config["musl_soname"] == "libc.musl-x86_64.so.1"
    assert config["zig"] == str(toolchain.zig_executable())


def test_entry_point_refuses_a_host_library_folder_in_one_line(entry_points: toolchain.Toolchain) -> None:
    done = subprocess.run([str(entry_points.cc), "-L/usr/lib", "a.o"], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.startswith("rewheel: error: host library folder -L/usr/lib")
    assert done.stderr.count("\n") == 1


def test_entry_points_compile_and_archive_with_zig(entry_points: toolchain.Toolchain, tmp_path: Path) -> None:
    from elftools.elf.elffile import ELFFile

    (tmp_path / "f.c").write_text("int f(void) { return 42; }\n", encoding="utf-8")
    subprocess.run([str(entry_points.cc), "-c", "f.c", "-o", "f.o"], cwd=tmp_path, check=True)
    with (tmp_path / "f.o").open("rb") as handle:
        assert ELFFile(handle).header["e_machine"] == "EM_X86_64"
    subprocess.run([str(entry_points.ar), "rcs", "libf.a", "f.o"], cwd=tmp_path, check=True)
    assert (tmp_path / "libf.a").read_bytes().startswith(b"!<arch>\n")
