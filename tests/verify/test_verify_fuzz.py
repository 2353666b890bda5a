"""A bounded fuzz run of `rewheel verify`: real wheels mutated where parsers are weakest, a fixed seed.

Three real pinned MarkupSafe 2.1.5 wheels (manylinux x86_64, musllinux x86_64, win_amd64) are broken in
CASES_PER_WHEEL ways each: bytes flipped or set to edge values in the zip's end record, central directory
and local headers; in the ELF header, section headers, dynamic section, symbol and version tables; in the
PE headers, section table, import and export tables; and truncations of the wheel and of the binary. A
mutated binary is put back with a matching RECORD so it reaches the parsers. Every case runs through the
CLI in-process and must end in exit 0, 1 or 2 (2 with one line on stderr), with no traceback, within
CASE_SECONDS (a SIGALRM turns a hang into a failure naming the case).
"""

from __future__ import annotations

import random
import signal
import struct
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers.wheels import MARKUPSAFE_MUSL, MARKUPSAFE_WIN, MARKUPSAFE_X86, members_of, write_wheel

SEED = 20261202
CASES_PER_WHEEL = 110
CASE_SECONDS = 30
EDGE_VALUES = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)

BASES = {
    "manylinux": (MARKUPSAFE_X86, "manylinux_2_17_x86_64"),
    "musllinux": (MARKUPSAFE_MUSL, "musllinux_1_2_x86_64"),
    "win_amd64": (MARKUPSAFE_WIN, "win_amd64"),
}

Region = tuple[str, int, int]  # (what, start, end) inside a byte string


class Hang(Exception):
    pass


def zip_regions(data: bytes) -> list[Region]:
    end = data.rindex(b"PK\x05\x06")
    directory_size, directory_offset = struct.unpack_from("<II", data, end + 12)
    regions = [
        ("end record", end, end + 22),
        ("central directory", directory_offset, directory_offset + directory_size),
    ]
    position = -1
    while (position := data.find(b"PK\x03\x04", position + 1)) >= 0 and position < directory_offset:
        regions.append(("local header", position, position + 30))
    return regions


def elf_regions(binary: bytes) -> list[Region]:
    """ELF header, section header table and the sections the checker reads (64-bit little-endian)."""
    (e_shoff,) = struct.unpack_from("<Q", binary, 0x28)
    e_shentsize, e_shnum = struct.unpack_from("<HH", binary, 0x3A)
    regions = [("ELF header", 0, 64), ("section headers", e_shoff, e_shoff + e_shnum * e_shentsize)]
    wanted = {6: ".dynamic", 11: ".dynsym", 0x6FFFFFFE: ".gnu.version_r", 0x6FFFFFFF: ".gnu.version"}
    for index in range(e_shnum):
        fields = struct.unpack_from("<IIQQQQIIQQ", binary, e_shoff + index * e_shentsize)
        sh_type, sh_offset, sh_size, sh_link = fields[1], fields[4], fields[5], fields[6]
        if sh_type in wanted:
            regions.append((wanted[sh_type], sh_offset, sh_offset + sh_size))
            if sh_type == 11:  # its string table, .dynstr
                link = struct.unpack_from("<IIQQQQIIQQ", binary, e_shoff + sh_link * e_shentsize)
                regions.append((".dynstr", link[4], link[4] + min(link[5], 4096)))
    return regions


def pe_regions(binary: bytes) -> list[Region]:
    import pefile

    pe = pefile.PE(data=binary)
    header = pe.DOS_HEADER.e_lfanew
    optional_end = header + 24 + pe.FILE_HEADER.SizeOfOptionalHeader
    regions = [
        ("DOS header", 0, 64),
        ("PE and optional header", header, optional_end),
        ("section table", optional_end, optional_end + 40 * pe.FILE_HEADER.NumberOfSections),
    ]
    for what, index in (("import directory", 1), ("export directory", 0)):
        directory = pe.OPTIONAL_HEADER.DATA_DIRECTORY[index]
        if directory.VirtualAddress:
            start = pe.get_offset_from_rva(directory.VirtualAddress)
            regions.append((what, start, start + directory.Size))
    for entry in pe.DIRECTORY_ENTRY_IMPORT:  # lookup tables and the hint/name entries they point at
        first = pe.get_offset_from_rva(entry.struct.OriginalFirstThunk or entry.struct.FirstThunk)
        regions.append(
            (f"import lookup table of {entry.dll.decode()}", first, first + 8 * (len(entry.imports) + 1))
        )
        named = [i for i in entry.imports if i.name_offset]
        if named:
            regions.append(
                (
                    f"import names of {entry.dll.decode()}",
                    named[0].name_offset - 2,
                    named[-1].name_offset + 40,
                )
            )
    pe.close()
    return regions


def mutate(data: bytes, regions: list[Region], rng: random.Random) -> tuple[bytes, str]:
    """One mutation inside one region: a few random bytes, or an aligned 2/4/8-byte field set to an edge
    value (sizes, offsets and counts are where parsers trust their input)."""
    what, start, end = rng.choice(regions)
    start, end = max(0, min(start, len(data) - 1)), max(1, min(end, len(data)))
    if end <= start:
        end = start + 1
    out = bytearray(data)
    if rng.random() < 0.5:
        for _ in range(rng.randint(1, 4)):
            out[rng.randrange(start, end)] = rng.randrange(256)
        return bytes(out), f"random bytes in {what}"
    width = rng.choice((2, 4, 8))
    position = start + rng.randrange(max(1, (end - start) // width)) * width
    value = rng.choice((*EDGE_VALUES, len(data), len(data) + 1, rng.randrange(1 << 16)))
    encoded = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
    out[position : position + width] = encoded[: len(out) - position]
    return bytes(out[: len(data)]), f"{width}-byte field at {position - start} in {what} set to {value:#x}"


def cases(wheel: Path, rng: random.Random) -> list[tuple[str, Callable[[Path], Path]]]:
    """(description, build(out_dir) -> mutated wheel) pairs, CASES_PER_WHEEL of them."""
    original = wheel.read_bytes()
    members = members_of(wheel)
    binary_name = next(n for n in members if n.endswith((".so", ".pyd")))
    binary = members[binary_name]
    binary_regions = pe_regions(binary) if binary_name.endswith(".pyd") else elf_regions(binary)
    result: list[tuple[str, Callable[[Path], Path]]] = []

    def raw(data: bytes) -> Callable[[Path], Path]:
        def build(out: Path) -> Path:
            (out / wheel.name).write_bytes(data)
            return out / wheel.name

        return build

    def with_binary(data: bytes) -> Callable[[Path], Path]:
        return lambda out: write_wheel(out / wheel.name, {**members, binary_name: data})

    for _ in range(CASES_PER_WHEEL):
        kind = rng.random()
        if kind < 0.25:
            data, how = mutate(original, zip_regions(original), rng)
            result.append((f"zip: {how}", raw(data)))
        elif kind < 0.32:
            cut = rng.randrange(len(original))
            result.append((f"wheel truncated to {cut} bytes", raw(original[:cut])))
        elif kind < 0.38:
            cut = rng.randrange(len(binary))
            result.append((f"{binary_name} truncated to {cut} bytes", with_binary(binary[:cut])))
        else:
            data, how = mutate(binary, binary_regions, rng)
            for _ in range(rng.choice((0, 0, 1, 2))):  # sometimes several faults at once
                data, more = mutate(data, binary_regions, rng)
                how += f"; {more}"
            result.append((f"{binary_name}: {how}", with_binary(data)))
    return result


@pytest.fixture
def alarm():  # type: ignore[no-untyped-def]
    def on_alarm(signum, frame):  # type: ignore[no-untyped-def]
        raise Hang()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("base", sorted(BASES))
def test_mutated_real_wheels_never_crash_or_hang(
    base: str, pypi_file, run_cli, alarm, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    pin, target = BASES[base]
    wheel = pypi_file(*pin)
    assert run_cli("verify", str(wheel), "--target", target)[0] == 0  # the unmutated wheel is clean
    rng = random.Random(f"{SEED}-{base}")
    outcomes: Counter[int] = Counter()
    for number, (description, build) in enumerate(cases(wheel, rng)):
        out = tmp_path / str(number)
        out.mkdir()
        mutated = build(out)
        signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
        try:
            code, stdout, stderr = run_cli("verify", str(mutated), "--target", target, "--json")
        except Hang:
            pytest.fail(f"case {number} ({description}) did not finish in {CASE_SECONDS} s")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        context = f"case {number} ({description})"
        assert code in (0, 1, 2), f"{context}: exit {code}: {stderr[-3000:]}"
        assert "Traceback" not in stderr, f"{context}: {stderr[-3000:]}"
        if code == 2:
            assert len(stderr.strip().splitlines()) == 1 and stderr.startswith("rewheel: error: "), (
                context,
                stderr,
            )
        else:
            assert '"results"' in stdout, (context, stdout[-2000:])
        outcomes[code] += 1
        for path in out.iterdir():
            path.unlink()
    # the mutations reach both outcomes: some break the input outright, some leave a checkable wheel
    assert outcomes[2] and outcomes[0] + outcomes[1], outcomes
    assert sum(outcomes.values()) == CASES_PER_WHEEL


def test_the_fuzz_cases_are_fixed_by_the_seed(pypi_file) -> None:  # type: ignore[no-untyped-def]
    wheel = pypi_file(*MARKUPSAFE_X86)
    first = [d for d, _ in cases(wheel, random.Random(f"{SEED}-manylinux"))]
    again = [d for d, _ in cases(wheel, random.Random(f"{SEED}-manylinux"))]
    assert first == again and len(set(first)) > CASES_PER_WHEEL // 2
    assert zipfile.is_zipfile(wheel)
