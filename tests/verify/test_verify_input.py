"""`rewheel verify` on bad input: every broken zip, ELF or PE is one line on stderr and exit 2, a member named
like a binary that is not one is a finding, and the archive is held to unpack's limits in bounded memory.

The wheels are real (pinned MarkupSafe 2.1.5 wheels from PyPI) and broken here in one precise way each; the
zip bombs are written as raw zip records around a deflate stream made of one repeated block, so making a
2 GiB member costs milliseconds.
"""

from __future__ import annotations

import random
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import pytest

from conftest import need_executable, need_toolset
from helpers.wheels import MARKUPSAFE_MUSL, MARKUPSAFE_WIN, MARKUPSAFE_X86, members_of, write_wheel
from pipeline.unpack import Limits
from pipeline.verify import verify_wheel
from pipeline.verify.archive import UnusableWheel, read_wheel
from pipeline.verify.report import WheelReport

LINUX_TARGET = "manylinux_2_17_x86_64"
SPEEDUPS_SO = "markupsafe/_speedups.cpython-311-x86_64-linux-gnu.so"
SPEEDUPS_PYD = "markupsafe/_speedups.cp311-win_amd64.pyd"


def with_member(wheel: Path, out_dir: Path, name: str, data: bytes) -> Path:
    """A copy of `wheel` (same file name, so the same tags) in out_dir with member `name` replaced or added."""
    return write_wheel(out_dir / wheel.name, {**members_of(wheel), name: data})


def assert_unusable(result: tuple[int, str, str], *words: str) -> str:
    code, _out, err = result
    assert code == 2, (code, err[-2000:])
    assert "Traceback" not in err
    line = err.strip()
    assert "\n" not in line and line.startswith("rewheel: error: "), err
    for word in words:
        assert word in line, (word, line)
    return line


def central_entry(data: bytes | bytearray, name: str) -> int:
    """Offset of the central-directory record of member `name`."""
    position = -1
    while (position := data.find(b"PK\x01\x02", position + 1)) >= 0:
        length = struct.unpack_from("<H", data, position + 28)[0]
        if data[position + 46 : position + 46 + length] == name.encode():
            return position
    raise AssertionError(f"no central record for {name}")


def raw_zip(path: Path, members: list[tuple[str, int, bytes, int, int]]) -> Path:
    """A zip written record by record: (name, method, stored bytes, crc32, declared uncompressed size).
    zipfile cannot store a ready-made deflate stream or a size that lies; this can."""
    central = b""
    with open(path, "wb") as out:
        for name, method, data, crc, size in members:
            encoded = name.encode()
            offset = out.tell()
            out.write(
                struct.pack(
                    "<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(data), size, len(encoded), 0
                )
                + encoded
            )
            out.write(data)
            central += (
                struct.pack(
                    "<IHHHHHHIIIHHHHHII",
                    0x02014B50,
                    20,
                    20,
                    0,
                    method,
                    0,
                    0x21,
                    crc,
                    len(data),
                    size,
                    len(encoded),
                    0,
                    0,
                    0,
                    0,
                    0o644 << 16,
                    offset,
                )
                + encoded
            )
        start = out.tell()
        out.write(central)
        out.write(
            struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), start, 0)
        )
    return path


def repeated_deflate(block: bytes, count: int) -> tuple[bytes, int]:
    """(raw deflate stream, crc32) of `block` repeated `count` times, compressed once: after a full flush
    the compressor starts afresh, so every later copy compresses to the same bytes."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    stream = first + again * (count - 1) + compressor.flush()
    crc = 0
    for _ in range(count):
        crc = zlib.crc32(block, crc)
    return stream, crc


# Linux starts a child's ru_maxrss at its parent's resident size when it forks (the high-water mark is carried
# through exec), so a process forked by a large pytest reports pytest's size: a small launcher forks it instead.
_PEAK_RSS_LAUNCHER = """
import os, subprocess, sys
process = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
err = process.stderr.read()
_, status, usage = os.wait4(process.pid, 0)
sys.stderr.buffer.write(err)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def peak_rss_mib(command: list[str]) -> tuple[int, str, float]:
    """Run a process to its end: (exit code, stderr, peak resident memory in MiB) of that process alone."""
    launched = subprocess.run(
        [sys.executable, "-S", "-c", _PEAK_RSS_LAUNCHER, *command], capture_output=True, text=True
    )
    code, maxrss_kib = launched.stdout.split()
    return int(code), launched.stderr, int(maxrss_kib) / 1024


# ---- fixtures ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def linux_wheel(pypi_file) -> Path:  # type: ignore[no-untyped-def]
    return pypi_file(*MARKUPSAFE_X86)


@pytest.fixture(scope="module")
def windows_wheel(pypi_file) -> Path:  # type: ignore[no-untyped-def]
    return pypi_file(*MARKUPSAFE_WIN)


# ---- broken zips -------------------------------------------------------------------------------------------


def test_the_real_wheels_are_clean(linux_wheel: Path, windows_wheel: Path, pypi_file, run_cli) -> None:  # type: ignore[no-untyped-def]
    # the baseline every broken copy below is measured against
    assert run_cli("verify", str(linux_wheel), "--target", LINUX_TARGET)[0] == 0
    assert run_cli("verify", str(pypi_file(*MARKUPSAFE_MUSL)), "--target", "musllinux_1_2_x86_64")[0] == 0
    assert run_cli("verify", str(windows_wheel), "--target", "win_amd64")[0] == 0


def test_broken_central_directory_offset(linux_wheel: Path, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    # The end record claims the central directory starts 4 KiB later than it does: zipfile then computes
    # negative local-header offsets (os.pread raised EINVAL before).
    data = bytearray(linux_wheel.read_bytes())
    end = data.rindex(b"PK\x05\x06")
    (directory_offset,) = struct.unpack_from("<I", data, end + 16)
    struct.pack_into("<I", data, end + 16, directory_offset + 4096)
    broken = tmp_path / linux_wheel.name
    broken.write_bytes(bytes(data))
    assert_unusable(
        run_cli("verify", str(broken), "--target", LINUX_TARGET), linux_wheel.name, "local header"
    )


def test_local_header_offset_past_the_end(linux_wheel: Path, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    data = bytearray(linux_wheel.read_bytes())
    entry = central_entry(data, SPEEDUPS_SO)
    struct.pack_into("<I", data, entry + 42, len(data) + 100)
    broken = tmp_path / linux_wheel.name
    broken.write_bytes(bytes(data))
    assert_unusable(run_cli("verify", str(broken), "--target", LINUX_TARGET), "outside the archive")


def test_truncated_wheel(linux_wheel: Path, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    broken = tmp_path / linux_wheel.name
    broken.write_bytes(linux_wheel.read_bytes()[: linux_wheel.stat().st_size // 2])
    assert_unusable(run_cli("verify", str(broken), "--target", LINUX_TARGET), "not a readable zip archive")


def test_member_name_flagged_utf8_that_is_not_utf8(linux_wheel: Path, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    source = with_member(linux_wheel, tmp_path / "source", "markupsafe/caf\u00e9.py", b"")
    # zipfile wrote the name as UTF-8 and set the flag; make the bytes invalid UTF-8, same length
    data = source.read_bytes().replace("caf\u00e9".encode(), b"caf\xc3\x28")
    broken = tmp_path / linux_wheel.name
    broken.write_bytes(data)
    assert_unusable(run_cli("verify", str(broken), "--target", LINUX_TARGET), "UTF-8")


def test_empty_member_name_is_an_unsafe_path(linux_wheel: Path, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    # zipfile reads the name as "" (IndexError in ZipInfo.is_dir before): reported, not crashed on
    members = [
        (name, zipfile.ZIP_STORED, data, zlib.crc32(data), len(data))
        for name, data in members_of(linux_wheel).items()
    ]
    wheel = raw_zip(
        tmp_path / linux_wheel.name, [*members, ("", zipfile.ZIP_STORED, b"x", zlib.crc32(b"x"), 1)]
    )
    code, out, err = run_cli("verify", str(wheel), "--target", LINUX_TARGET)
    assert code == 1, err
    assert "[unsafe-path] member '' has an empty name" in out


def test_corrupt_deflate_stream(linux_wheel: Path, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    data = bytearray(linux_wheel.read_bytes())
    with zipfile.ZipFile(linux_wheel) as archive:
        info = archive.getinfo(SPEEDUPS_SO)
    name_length, extra_length = struct.unpack_from("<HH", data, info.header_offset + 26)
    start = info.header_offset + 30 + name_length + extra_length
    data[start : start + 64] = bytes(range(64))  # 0x00 0x01...: a stored block whose length check fails
    broken = tmp_path / linux_wheel.name
    broken.write_bytes(bytes(data))
    assert_unusable(run_cli("verify", str(broken), "--target", LINUX_TARGET), SPEEDUPS_SO, "corrupt")


def test_member_larger_than_its_declared_size(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    # a header that under-declares a member cannot make the reader inflate more than it declares
    stream, crc = repeated_deflate(bytes(1 << 20), 8)
    wheel = raw_zip(
        tmp_path / "liar-1.0-py3-none-any.whl", [("liar/data.bin", zipfile.ZIP_DEFLATED, stream, crc, 1000)]
    )
    assert_unusable(run_cli("verify", str(wheel), "--target", "any"), "liar/data.bin")


# ---- limits and memory -------------------------------------------------------------------------------------


def test_limits_are_unpacks_and_checked_before_inflating(linux_wheel: Path) -> None:
    cases = {
        "members exceed": Limits(max_members=5),
        "uncompressed exceed": Limits(max_total_bytes=10_000),
        "more than the limit": Limits(max_member_bytes=10_000),
    }
    for words, limits in cases.items():
        with pytest.raises(UnusableWheel, match=words):
            read_wheel(linux_wheel, WheelReport(wheel=linux_wheel.name, target=LINUX_TARGET), limits=limits)
    read_wheel(linux_wheel, WheelReport(wheel=linux_wheel.name, target=LINUX_TARGET))  # the defaults pass


def test_four_512_mib_members_are_refused_in_bounded_memory(tmp_path: Path, rewheel_exe: list[str]) -> None:
    # the hostile-input run: a 2 MB wheel whose four members inflate to 512 MiB each took 1.07 GB and
    # passed; now the ratio limit refuses it before any member is inflated
    stream, crc = repeated_deflate(bytes(1 << 20), 512)
    members = [(f"bomb/part{k}.bin", zipfile.ZIP_DEFLATED, stream, crc, 512 << 20) for k in range(4)]
    wheel = raw_zip(tmp_path / "bomb-1.0-py3-none-manylinux_2_17_x86_64.whl", members)
    assert wheel.stat().st_size < 4 << 20
    code, err, peak = peak_rss_mib([*rewheel_exe, "verify", str(wheel), "--target", LINUX_TARGET])
    assert code == 2, err
    assert "zip bomb" in err and len(err.strip().splitlines()) == 1, err
    assert peak < 200, f"peak RSS {peak:.0f} MiB"


def test_large_members_stream_in_bounded_memory(tmp_path: Path, rewheel_exe: list[str]) -> None:
    # under the ratio limit but each member above the in-memory size: streamed, hashed, never held whole
    noise = random.Random(20261202).randbytes(20_000)
    block = noise + bytes((1 << 20) - len(noise))  # compresses about 50x
    count = 96  # 96 MiB per member, above IN_MEMORY_BYTES (64 MiB)
    stream, crc = repeated_deflate(block, count)
    size = len(block) * count
    members = [(f"big/part{k}.bin", zipfile.ZIP_DEFLATED, stream, crc, size) for k in range(4)]
    wheel = raw_zip(tmp_path / "big-1.0-py3-none-any.whl", members)
    code, err, peak = peak_rss_mib([*rewheel_exe, "verify", str(wheel), "--target", "any"])
    # no WHEEL, no RECORD: findings (exit 1), after every member was read through
    assert code == 1, err
    assert peak < 250, f"peak RSS {peak:.0f} MiB for 4 x {size >> 20} MiB members"


def test_a_large_binary_is_parsed_from_a_mapped_spill_file(
    linux_wheel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipeline.verify.archive as archive

    padded = members_of(linux_wheel)[SPEEDUPS_SO] + bytes(3 << 20)
    wheel = with_member(linux_wheel, tmp_path, SPEEDUPS_SO, padded)
    in_memory = verify_wheel(wheel, LINUX_TARGET)
    monkeypatch.setattr(archive, "IN_MEMORY_BYTES", 1 << 20)
    streamed = verify_wheel(wheel, LINUX_TARGET)
    assert streamed.binaries == in_memory.binaries == 1
    assert streamed.to_json() == in_memory.to_json()
    assert streamed.ok, [f.message for f in streamed.findings]


# ---- files named like binaries -----------------------------------------------------------------------------


def test_so_of_random_bytes_is_a_finding(linux_wheel: Path, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    noise = bytes((i * 7919 + 13) % 251 for i in range(4096))
    wheel = with_member(linux_wheel, tmp_path, "markupsafe/_extra.cpython-311-x86_64-linux-gnu.so", noise)
    code, out, err = run_cli("verify", str(wheel), "--target", LINUX_TARGET)
    assert code == 1, err
    assert "[invalid-binary] markupsafe/_extra.cpython-311-x86_64-linux-gnu.so" in out
    # a versioned library name counts too; a .pyd in a Linux wheel is another platform's concern
    wheel = with_member(linux_wheel, tmp_path / "v", "markupsafe.libs/libz-1a2b.so.1.2.13", noise)
    assert (
        "[invalid-binary] markupsafe.libs/libz-1a2b.so.1.2.13"
        in run_cli("verify", str(wheel), "-t", LINUX_TARGET)[1]
    )
    wheel = with_member(linux_wheel, tmp_path / "p", "markupsafe/data.pyd", noise)
    assert run_cli("verify", str(wheel), "--target", LINUX_TARGET)[0] == 0


def test_pyd_that_is_not_pe_is_a_finding(windows_wheel: Path, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    wheel = with_member(windows_wheel, tmp_path, "markupsafe/_other.cp311-win_amd64.pyd", b"not a DLL\n")
    code, out, err = run_cli("verify", str(wheel), "--target", "win_amd64")
    assert code == 1, err
    assert "[invalid-binary] markupsafe/_other.cp311-win_amd64.pyd" in out


def test_malformed_elf_is_unusable(linux_wheel: Path, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    binary = bytearray(members_of(linux_wheel)[SPEEDUPS_SO])
    struct.pack_into("<Q", binary, 0x28, len(binary) + 4096)  # e_shoff past the end
    wheel = with_member(linux_wheel, tmp_path, SPEEDUPS_SO, bytes(binary))
    assert_unusable(run_cli("verify", str(wheel), "--target", LINUX_TARGET), SPEEDUPS_SO, "malformed ELF")


# ---- PE ------------------------------------------------------------------------------------------------------


def pe_with(windows_wheel: Path, change) -> bytes:  # type: ignore[no-untyped-def]
    import pefile

    pe = pefile.PE(data=members_of(windows_wheel)[SPEEDUPS_PYD])
    change(pe)
    data = bytes(pe.write())
    pe.close()
    return data


def test_export_directory_outside_the_file(windows_wheel: Path, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    def move_exports(pe) -> None:  # type: ignore[no-untyped-def]
        pe.OPTIONAL_HEADER.DATA_DIRECTORY[0].VirtualAddress = 0x7FFF0000

    wheel = with_member(windows_wheel, tmp_path, SPEEDUPS_PYD, pe_with(windows_wheel, move_exports))
    assert_unusable(run_cli("verify", str(wheel), "--target", "win_amd64"), SPEEDUPS_PYD, "malformed PE")


@pytest.mark.parametrize("garble", ["thunks outside the image", "dll name outside", "function name outside"])
def test_garbled_import_table_is_unusable(windows_wheel: Path, tmp_path: Path, run_cli, garble: str) -> None:  # type: ignore[no-untyped-def]
    # The import table is what the checker checks: read partly, a module would pass with fewer imports
    # than the loader resolves. The loader itself refuses such a file, so it is malformed input (exit 2).
    def change(pe) -> None:  # type: ignore[no-untyped-def]
        descriptor = pe.DIRECTORY_ENTRY_IMPORT[1].struct  # KERNEL32.dll
        if garble == "thunks outside the image":
            descriptor.OriginalFirstThunk = descriptor.FirstThunk = 0x7FFF0000
        elif garble == "dll name outside":
            descriptor.Name = 0x7FFF0000
        else:
            thunk = pe.DIRECTORY_ENTRY_IMPORT[1].imports[0]
            thunk.struct_table.AddressOfData = 0x7FFF0000
            if thunk.struct_iat is not None:
                thunk.struct_iat.AddressOfData = 0x7FFF0000

    wheel = with_member(windows_wheel, tmp_path, SPEEDUPS_PYD, pe_with(windows_wheel, change))
    assert_unusable(run_cli("verify", str(wheel), "--target", "win_amd64"), SPEEDUPS_PYD, "malformed PE")


def test_long_cxx_import_names_match_their_exports(tmp_path: Path) -> None:
    """pyarrow's win_amd64 modules import MSVC-mangled names longer than pefile's 512-character default;
    cut there, they never matched the exports (read whole) and were reported missing."""
    need_toolset("mingw")
    gcc = need_executable("x86_64-w64-mingw32-gcc", "Debian package gcc-mingw-w64-x86-64")
    dlltool = need_executable("x86_64-w64-mingw32-dlltool", "Debian package binutils-mingw-w64-x86-64")
    long_name = "f_" + "templated_argument_" * 60  # 1,142 characters, like a deep C++ template instance
    helper_c = tmp_path / "helper.c"
    helper_c.write_text(f"__declspec(dllexport) int {long_name}(void){{return 7;}}\n")
    helper = tmp_path / "arrow-1a2b.dll"
    subprocess.run([gcc, "-shared", "-O1", "-o", str(helper), str(helper_c)], check=True, capture_output=True)
    definition = tmp_path / "arrow.def"
    definition.write_text(f"LIBRARY arrow-1a2b.dll\nEXPORTS\n{long_name}\n")
    library = tmp_path / "libarrow.a"
    subprocess.run(
        [dlltool, "--input-def", str(definition), "--output-lib", str(library)],
        check=True,
        capture_output=True,
    )
    module_c = tmp_path / "ext.c"
    module_c.write_text(
        f"int {long_name}(void);\n__declspec(dllexport) int ext(void){{return {long_name}();}}\n"
    )
    module = tmp_path / "ext.pyd"
    subprocess.run(
        [gcc, "-shared", "-O1", "-o", str(module), str(module_c), str(library)],
        check=True,
        capture_output=True,
    )
    from pipeline.verify.pe import parse_pe

    imports = parse_pe(module.read_bytes()).imports["arrow-1a2b.dll"]
    assert [i.name for i in imports] == [long_name]
    assert long_name in parse_pe(helper.read_bytes()).exports

    members = {
        "demo/_ext.cp311-win_amd64.pyd": module.read_bytes(),
        "demo.libs/arrow-1a2b.dll": helper.read_bytes(),
        "demo-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: cp311-cp311-win_amd64\n",
        "demo-1.0.dist-info/RECORD": b"",
    }
    wheel = write_wheel(tmp_path / "wheel" / "demo-1.0-cp311-cp311-win_amd64.whl", members)
    report = verify_wheel(wheel, "win_amd64")
    assert not [f for f in report.findings if f.code == "missing-function"], [
        f.message for f in report.findings
    ]
    # and a name one character off is still caught, so the check is not simply skipped for long names
    definition.write_text(f"LIBRARY arrow-1a2b.dll\nEXPORTS\n{long_name}x\n")
    subprocess.run(
        [dlltool, "--input-def", str(definition), "--output-lib", str(library)],
        check=True,
        capture_output=True,
    )
    module_c.write_text(
        f"int {long_name}x(void);\n__declspec(dllexport) int ext(void){{return {long_name}x();}}\n"
    )
    subprocess.run(
        [gcc, "-shared", "-O1", "-o", str(module), str(module_c), str(library)],
        check=True,
        capture_output=True,
    )
    wheel = write_wheel(wheel, {**members, "demo/_ext.cp311-win_amd64.pyd": module.read_bytes()})
    missing = [f for f in verify_wheel(wheel, "win_amd64").findings if f.code == "missing-function"]
    assert [f.symbol for f in missing] == [long_name + "x"]


def test_the_python_api_raises_rewheel_errors_for_unusable_input(linux_wheel: Path, tmp_path: Path) -> None:
    # verify_wheel (what the publish stage calls) raises RewheelError subclasses, which the CLI turns into exit 2
    from pipeline.errors import RewheelError

    broken = tmp_path / linux_wheel.name
    broken.write_bytes(linux_wheel.read_bytes()[:-30])
    with pytest.raises(RewheelError, match="not a readable zip archive"):
        verify_wheel(broken, LINUX_TARGET)
