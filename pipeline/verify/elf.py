"""A small ELF reader for the symbol checker: only what the dynamic loader looks at.

It reads, from bytes already in memory, the ELF header, the section headers, the dynamic section
(DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH, whether DT_RELR is present), .dynsym/.dynstr and the GNU symbol-versioning sections.
That is all `ld.so` uses to decide whether a library loads, and it is a fraction of what a general ELF
library parses, which is why this is many times faster than pyelftools on the same wheel.
"""

from __future__ import annotations

import mmap
import struct
import time
from dataclasses import dataclass, field

from pipeline.errors import RewheelError

ELF_MAGIC = b"\x7fELF"

# e_machine values for the architectures wheel tags name (ELF specification / <elf.h>).
MACHINES = {
    3: "i686",
    8: "mips",
    20: "ppc",
    21: "ppc64",
    22: "s390x",
    40: "armv7l",
    62: "x86_64",
    183: "aarch64",
    243: "riscv64",
    258: "loongarch64",
}

SHT_DYNAMIC = 6
SHT_DYNSYM = 11
SHT_GNU_VERDEF = 0x6FFFFFFD
SHT_GNU_VERNEED = 0x6FFFFFFE
SHT_GNU_VERSYM = 0x6FFFFFFF

DT_NEEDED = 1
DT_SONAME = 14
DT_RPATH = 15
DT_RUNPATH = 29
# packed relative relocations (`ld -z pack-relative-relocs`): a loader that predates them skips the table
DT_RELR = 36

# Bounds far above any real library (a .dynamic section holds a few dozen entries, one RPATH or RUNPATH of a
# few paths), so that a crafted one is refused instead of costing gigabytes: 48,000 DT_RPATH entries all
# naming one long string would otherwise expand to a list of billions of paths.
MAX_DYNAMIC_ENTRIES = 1 << 12
MAX_SEARCH_PATHS = 1 << 10  # RPATH and RUNPATH paths together
# the strings the dynamic section names (needed libraries, soname, search paths): the linker writes each
# once, so more bytes than the string table holds means entries share one string over and over
DYNAMIC_STRING_SLACK = 1 << 16
# Every loop above is bounded by the bytes it walks; this bounds what those bounds allow in the worst case.
PARSE_SECONDS = 30.0

STB_WEAK = 2
VER_FLG_BASE = 1
VER_FLG_WEAK = 2


class MalformedBinary(RewheelError):
    """A file looks like a binary (ELF or PE magic) but cannot be parsed."""


@dataclass(frozen=True)
class UndefinedSymbol:
    name: str
    weak: bool
    version: str | None = None  # e.g. "GLIBC_2.28"
    version_file: str | None = None  # the library the version is required from, e.g. "libc.so.6"


@dataclass
class ElfInfo:
    machine: int
    is_64bit: bool
    little_endian: bool
    elf_type: int
    needed: list[str] = field(default_factory=list)
    soname: str | None = None
    rpath: list[str] = field(default_factory=list)
    runpath: list[str] = field(default_factory=list)
    undefined: list[UndefinedSymbol] = field(default_factory=list)
    defined: set[str] = field(default_factory=set)
    version_definitions: set[str] = field(default_factory=set)
    # library -> [(version name, weak)] from .gnu.version_r: what the loader checks before any symbol
    version_needs: dict[str, list[tuple[str, bool]]] = field(default_factory=dict)
    has_dynamic: bool = True
    uses_relr: bool = False  # a DT_RELR entry: the loader must apply packed relative relocations

    @property
    def arch(self) -> str:
        if self.machine == 21 and self.little_endian:
            return "ppc64le"
        return MACHINES.get(self.machine, f"e_machine={self.machine}")


def is_elf(data: bytes) -> bool:
    return data[:4] == ELF_MAGIC


def _cstring(table: bytes, offset: int, limit: int = 4096) -> str:
    # library and version names are file names and short labels: a longer "name" is a broken table
    end = table.index(b"\0", offset, offset + limit)
    return table[offset:end].decode("utf-8", "replace")


def parse_elf(data: bytes | mmap.mmap, name: str = "<elf>") -> ElfInfo:
    """Parse the loader-relevant parts of an ELF file held in memory (or mapped); MalformedBinary when it
    cannot. Every loop is bounded by the bytes it walks, so no input makes it spin."""
    try:
        return _parse(data, time.monotonic() + PARSE_SECONDS)
    except MalformedBinary as exc:
        raise MalformedBinary(f"{name}: malformed ELF file ({exc})") from None
    except (struct.error, IndexError, ValueError, KeyError, OverflowError) as exc:
        raise MalformedBinary(f"{name}: malformed ELF file ({exc.__class__.__name__}: {exc})") from None


def _parse(data: bytes | mmap.mmap, deadline: float) -> ElfInfo:
    if len(data) < 52 or data[:4] != ELF_MAGIC:
        raise ValueError("not an ELF file")
    elf_class, encoding = data[4], data[5]
    if elf_class not in (1, 2) or encoding not in (1, 2):
        raise ValueError(f"unknown ELF class {elf_class} or data encoding {encoding}")
    is64 = elf_class == 2
    end = "<" if encoding == 1 else ">"
    if is64:
        (e_type, e_machine, _, _, _, e_shoff, _, _, _, _, e_shentsize, e_shnum, _) = struct.unpack_from(
            end + "HHIQQQIHHHHHH", data, 16
        )
        shdr = struct.Struct(end + "IIQQQQIIQQ")
    else:
        (e_type, e_machine, _, _, _, e_shoff, _, _, _, _, e_shentsize, e_shnum, _) = struct.unpack_from(
            end + "HHIIIIIHHHHHH", data, 16
        )
        shdr = struct.Struct(end + "IIIIIIIIII")
    info = ElfInfo(machine=e_machine, is_64bit=is64, little_endian=encoding == 1, elf_type=e_type)
    if e_shoff == 0 or e_shnum == 0:
        # No section headers (sstrip'ed): the loader still works, but there is nothing cheap to read.
        info.has_dynamic = False
        return info
    if e_shentsize != shdr.size or e_shoff + e_shnum * shdr.size > len(data):
        raise ValueError("section header table out of bounds")
    # (type, offset, size, link) per section
    sections = []
    for index in range(e_shnum):
        fields = shdr.unpack_from(data, e_shoff + index * shdr.size)
        sh_type, sh_offset, sh_size, sh_link = fields[1], fields[4], fields[5], fields[6]
        sections.append((sh_type, sh_offset, sh_size, sh_link))

    def body(index: int) -> bytes:
        _sh_type, offset, size, _ = sections[index]
        if offset + size > len(data):
            raise ValueError(f"section {index} out of bounds")
        return data[offset : offset + size]

    by_type: dict[int, int] = {}
    for index, (sh_type, *_rest) in enumerate(sections):
        by_type.setdefault(sh_type, index)
    if SHT_DYNAMIC not in by_type:
        info.has_dynamic = False  # a static executable or an object file: no loader involvement
        return info

    dynamic_index = by_type[SHT_DYNAMIC]
    dynstr = body(sections[dynamic_index][3])
    dyn = struct.Struct(end + ("qQ" if is64 else "iI"))
    string_bytes_left = len(dynstr) + DYNAMIC_STRING_SLACK

    def dynamic_string(value: int, limit: int = 4096) -> str:
        nonlocal string_bytes_left
        text = _cstring(dynstr, value, limit)
        string_bytes_left -= len(text) + 1
        if string_bytes_left < 0:
            raise MalformedBinary(
                "its dynamic section names more string bytes than its string table holds "
                "(entries repeating one string)"
            )
        return text

    dynamic = body(dynamic_index)
    for count, (tag, value) in enumerate(dyn.iter_unpack(dynamic[: len(dynamic) // dyn.size * dyn.size])):
        if tag == 0:
            break
        if count >= MAX_DYNAMIC_ENTRIES:
            raise MalformedBinary(f"its dynamic section has more than {MAX_DYNAMIC_ENTRIES} entries")
        if tag == DT_NEEDED:
            info.needed.append(dynamic_string(value))
        elif tag == DT_SONAME:
            info.soname = dynamic_string(value)
        elif tag in (DT_RPATH, DT_RUNPATH):
            paths = info.rpath if tag == DT_RPATH else info.runpath
            paths.extend(p for p in dynamic_string(value, 1 << 16).split(":") if p)
            if len(info.rpath) + len(info.runpath) > MAX_SEARCH_PATHS:
                raise MalformedBinary(f"its RPATH and RUNPATH name more than {MAX_SEARCH_PATHS} paths")
        elif tag == DT_RELR:
            info.uses_relr = True

    # Version index -> (name, file) for needed versions, index -> name for defined ones.
    needed_versions: dict[int, tuple[str, str]] = {}
    if SHT_GNU_VERNEED in by_type:
        index = by_type[SHT_GNU_VERNEED]
        table, strings = body(index), body(sections[index][3])
        offset = 0
        # every entry and aux record takes 16 bytes: more steps than that fit are a loop, not a table
        budget = len(table) // 16 + 1
        while True:
            budget -= 1
            if budget < 0:
                raise ValueError("version-needs table loops")
            _, count, file_off, aux, next_off = struct.unpack_from(end + "HHIII", table, offset)
            file = _cstring(strings, file_off)
            entries = info.version_needs.setdefault(file, [])
            aux_offset = offset + aux
            for _ in range(count):
                budget -= 1
                if budget < 0:
                    raise ValueError("version-needs table loops")
                _, flags, other, name_off, aux_next = struct.unpack_from(end + "IHHII", table, aux_offset)
                version = _cstring(strings, name_off)
                needed_versions[other & 0x7FFF] = (version, file)
                entries.append((version, bool(flags & VER_FLG_WEAK)))
                if not aux_next:
                    break
                aux_offset += aux_next
            if not next_off:
                break
            offset += next_off
    defined_versions: dict[int, str] = {}
    if SHT_GNU_VERDEF in by_type:
        index = by_type[SHT_GNU_VERDEF]
        table, strings = body(index), body(sections[index][3])
        offset = 0
        budget = len(table) // 20 + 1  # a definition record takes 20 bytes
        while True:
            budget -= 1
            if budget < 0:
                raise ValueError("version-definitions table loops")
            _, flags, ndx, count, _, aux, next_off = struct.unpack_from(end + "HHHHIII", table, offset)
            if count:
                (name_off, _) = struct.unpack_from(end + "II", table, offset + aux)
                name = _cstring(strings, name_off)
                defined_versions[ndx & 0x7FFF] = name
                if not flags & VER_FLG_BASE:
                    info.version_definitions.add(name)
            if not next_off:
                break
            offset += next_off

    if SHT_DYNSYM not in by_type:
        return info
    symtab_index = by_type[SHT_DYNSYM]
    symtab = body(symtab_index)
    strtab = body(sections[symtab_index][3])
    versym = body(by_type[SHT_GNU_VERSYM]) if SHT_GNU_VERSYM in by_type else b""
    versions = struct.unpack(end + f"{len(versym) // 2}H", versym) if versym else ()
    # only st_name, st_info, st_other and st_shndx are read (the value and size fields are skipped)
    sym = struct.Struct(end + ("IBBH16x" if is64 else "I8xBBH"))
    usable = len(symtab) // sym.size * sym.size
    defined = info.defined
    undefined = info.undefined
    # Symbol names are ASCII in practice: then one decode of the table and str slicing is several times
    # faster than a decode per name. A table with other bytes is read name by name as UTF-8.
    text = strtab.decode("ascii") if strtab.isascii() else None
    version_count = len(versions)
    name_bytes_left = 4 * len(strtab) + (1 << 20)
    for number, (name_off, st_info, st_other, shndx) in enumerate(
        sym.iter_unpack(symtab[sym.size : usable]), 1
    ):
        bind = st_info >> 4
        if bind == 0 or (st_info & 0xF) in (3, 4) or not name_off:
            continue  # local, section and file symbols are not linkable; nameless ones match nothing
        if text is not None:
            name = text[name_off : text.index("\0", name_off)]
        else:
            name = _cstring(strtab, name_off, 1 << 16)
        # names may share tails (the linker merges "foo" into "barfoo"), never much more than that: entries
        # all pointing at one long name would make this loop quadratic
        name_bytes_left -= len(name) + 1
        if name_bytes_left < 0:
            raise ValueError("symbol names overlap: more name bytes than the string table can hold")
        if not number & 0xFFF and time.monotonic() > deadline:
            raise MalformedBinary(f"reading its symbols took more than {PARSE_SECONDS:.0f} s")
        if shndx == 0:
            needed_version = needed_versions.get(versions[number] & 0x7FFF if number < version_count else 1)
            if needed_version is None:
                undefined.append(UndefinedSymbol(name, bind == STB_WEAK))
            else:
                undefined.append(
                    UndefinedSymbol(name, bind == STB_WEAK, needed_version[0], needed_version[1])
                )
        elif st_other & 3 in (0, 3):  # default or protected visibility: exported
            defined.add(name)
    return info
