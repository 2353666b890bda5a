"""PE (Windows DLL/.pyd) reading for the symbol checker: machine, imports, delay imports, exports.

pefile reads the headers and maps RVAs to file offsets (fast_load, from the bytes already in memory or
mapped). The three tables the loader consults are read here, strictly: pefile's import parser drops a
descriptor whose DLL name it cannot read, without a warning, and cuts names at 512 characters
(MAX_IMPORT_NAME_LENGTH; MSVC's mangled C++ names are longer, e.g. pyarrow's), so a garbled import table
passed as a module importing less. The Windows loader refuses a module whose import table points outside
the image, so here that is a malformed binary (MalformedBinary, exit 2): the checker cannot say what the
module imports, so it has nothing honest to report as findings.
"""

from __future__ import annotations

import mmap
import struct
import time
from dataclasses import dataclass, field

from pipeline.verify.elf import MalformedBinary

# Names are bounded by the file they sit in; this only has to be above any real one (MSVC truncates
# decorated names at 4,096 characters).
NAME_LENGTH_LIMIT = 1 << 16
# Import tables far above any real module's (dozens of DLLs, a few thousand functions): the byte-based
# budgets below scale with the file, and a highly compressible file is large, so these cap the work itself.
MAX_IMPORTED_DLLS = 1 << 10  # import and delay-import descriptors together
MAX_FUNCTIONS_PER_DLL = 1 << 15
MAX_IMPORTED_FUNCTIONS = 1 << 16  # in all import and delay-import tables together
PARSE_SECONDS = 30.0
IMAGE_ORDINAL_FLAG32 = 1 << 31
IMAGE_ORDINAL_FLAG64 = 1 << 63

MACHINES = {0x8664: "AMD64", 0xAA64: "ARM64", 0x14C: "x86", 0x1C4: "ARM", 0xA641: "ARM64EC"}


@dataclass(frozen=True)
class PeImport:
    name: str | None
    ordinal: int | None


@dataclass
class PeInfo:
    machine: int
    imports: dict[str, list[PeImport]] = field(default_factory=dict)  # DLL name as written -> functions
    delay_imports: dict[str, list[PeImport]] = field(default_factory=dict)
    exports: set[str] = field(default_factory=set)
    export_ordinals: dict[int, str] = field(default_factory=dict)
    forwarders: dict[str, str] = field(default_factory=dict)  # name -> "target.dll!name"

    @property
    def arch(self) -> str:
        return MACHINES.get(self.machine, f"machine=0x{self.machine:x}")


def is_pe(data: bytes) -> bool:
    return data[:2] == b"MZ"


class _OverBound(ValueError):
    """A bound on the work of reading the tables was passed: a crafted file, wherever it happens."""


class _Image:
    """RVA -> bytes of one PE image, every read bounds-checked (ValueError when outside the file)."""

    def __init__(self, pe: object, data: bytes | mmap.mmap) -> None:
        self.pe = pe
        self.data = data
        # Real tables do not overlap, so a file holds fewer name bytes and thunks than these; a crafted file
        # whose entries all point at one long name or one long thunk array would otherwise take hours.
        self.name_bytes_left = 4 * len(data) + (1 << 20)
        self.thunks_left = len(data) // 4 + 1
        self.functions_left = MAX_IMPORTED_FUNCTIONS
        self.dlls_left = MAX_IMPORTED_DLLS
        self.deadline = time.monotonic() + PARSE_SECONDS

    def one_more_dll(self) -> None:
        self.dlls_left -= 1
        if self.dlls_left < 0:
            raise _OverBound(f"it imports from more than {MAX_IMPORTED_DLLS} DLLs")

    def offset(self, rva: int, what: str) -> int:
        import pefile

        try:
            position = self.pe.get_offset_from_rva(rva)  # type: ignore[attr-defined]
        except pefile.PEFormatError:
            position = None
        if position is None or not 0 <= position < len(self.data):
            raise ValueError(f"{what} at RVA 0x{rva:x} is outside the file")
        return int(position)

    def string(self, rva: int, what: str) -> str:
        position = self.offset(rva, what)
        stop = self.data.find(b"\0", position, position + NAME_LENGTH_LIMIT)
        if stop < 0:
            raise ValueError(f"{what} at RVA 0x{rva:x} has no end")
        self.name_bytes_left -= stop - position + 1
        if self.name_bytes_left < 0:
            raise ValueError("its name tables overlap: more name bytes than the file can hold")
        return self.data[position:stop].decode("ascii", "replace")

    def thunks(self, rva: int, is64: bool, what: str) -> list[PeImport]:
        """A zero-terminated import lookup table: by ordinal (high bit) or by hint/name RVA."""
        size, flag = (8, IMAGE_ORDINAL_FLAG64) if is64 else (4, IMAGE_ORDINAL_FLAG32)
        layout = "<Q" if is64 else "<I"
        position = self.offset(rva, what)
        result: list[PeImport] = []
        while True:
            self.thunks_left -= 1
            if self.thunks_left < 0:
                raise ValueError("its import lookup tables overlap: more entries than the file can hold")
            if position + size > len(self.data):
                raise ValueError(f"{what} runs past the end of the file")
            (entry,) = struct.unpack_from(layout, self.data, position)
            if not entry:
                return result
            if len(result) >= MAX_FUNCTIONS_PER_DLL:
                raise _OverBound(f"{what} lists more than {MAX_FUNCTIONS_PER_DLL} functions")
            self.functions_left -= 1
            if self.functions_left < 0:
                raise _OverBound(f"its import tables list more than {MAX_IMPORTED_FUNCTIONS} functions")
            if not self.functions_left & 0xFFF and time.monotonic() > self.deadline:
                raise _OverBound(f"reading its import tables took more than {PARSE_SECONDS:.0f} s")
            if entry & flag:
                result.append(PeImport(None, entry & 0xFFFF))
            else:
                name = self.string((entry & 0x7FFFFFFF) + 2, f"a function name in {what}")
                if not name:
                    raise ValueError(f"{what} has an empty function name")
                result.append(PeImport(name, None))
            position += size


def _read_imports(image: _Image, is64: bool, rva: int, info: PeInfo) -> None:
    """IMAGE_IMPORT_DESCRIPTORs (20 bytes each) until the all-zero one; any unreadable part raises."""
    position = image.offset(rva, "the import directory")
    while True:
        if position + 20 > len(image.data):
            raise ValueError("the import directory runs past the end of the file")
        lookup, _, _, name_rva, first_thunk = struct.unpack_from("<IIIII", image.data, position)
        if not (lookup or name_rva or first_thunk):
            return
        image.one_more_dll()
        dll = image.string(name_rva, "an imported DLL name")
        if not dll:
            raise ValueError("the import directory names a DLL with an empty name")
        what = f"the import table of {dll}"
        info.imports.setdefault(dll, []).extend(image.thunks(lookup or first_thunk, is64, what))
        position += 20


def _read_delay_imports(image: _Image, is64: bool, rva: int, image_base: int, info: PeInfo) -> None:
    """ImgDelayDescr records (32 bytes). The delay-load helper reads one descriptor when a function is first
    called; the loader never walks the table, so bytes after the last real descriptor (GNU ld leaves some)
    do not stop a module from loading: reading stops at the first descriptor that does not read."""
    try:
        position = image.offset(rva, "the delay-import directory")
    except ValueError:
        return
    while position + 32 <= len(image.data):
        attributes, name_rva, _, _, names_rva = struct.unpack_from("<IIIII", image.data, position)
        if not (name_rva or names_rva):
            return
        if not attributes & 1:  # old-style (VC6) descriptors hold addresses, not RVAs
            name_rva, names_rva = name_rva - image_base, names_rva - image_base
        image.one_more_dll()  # outside the try: too many descriptors is a crafted file, not GNU ld's slack
        try:
            dll = image.string(name_rva, "a delay-loaded DLL name")
            functions = image.thunks(names_rva, is64, f"the delay-import table of {dll}")
        except _OverBound:
            raise
        except ValueError:
            return
        if not dll:
            return
        info.delay_imports.setdefault(dll, []).extend(functions)
        position += 32


def _read_exports(image: _Image, directory: object, info: PeInfo) -> None:
    """The export directory, read directly: pefile gives up on names it finds suspicious in large DLLs
    (OpenBLAS's 9,546 exports come back with 1,354 names missing), and the loader does not."""
    rva, size = directory.VirtualAddress, directory.Size  # type: ignore[attr-defined]
    if not rva or not size:
        return
    start, end = rva, rva + size
    data = image.data
    (base, functions, names, functions_rva, names_rva, ordinals_rva) = struct.unpack_from(
        "<IIIIII", data, image.offset(rva, "the export directory") + 16
    )
    if functions > 1 << 20 or names > functions:
        raise ValueError("implausible export directory")
    addresses = (
        struct.unpack_from(f"<{functions}I", data, image.offset(functions_rva, "the export address table"))
        if functions
        else ()
    )
    name_rvas = (
        struct.unpack_from(f"<{names}I", data, image.offset(names_rva, "the export name table"))
        if names
        else ()
    )
    name_ordinals = (
        struct.unpack_from(f"<{names}H", data, image.offset(ordinals_rva, "the export ordinal table"))
        if names
        else ()
    )
    named: dict[int, str] = {}
    for count, (name_rva, index) in enumerate(zip(name_rvas, name_ordinals, strict=True)):
        if not count & 0xFFF and time.monotonic() > image.deadline:
            raise _OverBound(f"reading its export table took more than {PARSE_SECONDS:.0f} s")
        label = image.string(name_rva, "an export name")
        named[index] = label
        info.exports.add(label)
    for index, address in enumerate(addresses):
        if not address:
            continue
        label = named.get(index, "")
        info.export_ordinals[base + index] = label
        if start <= address < end and label:  # the address points at "DLL.Function": a forwarder
            target_dll, _, target_name = image.string(address, "a forwarder").partition(".")
            info.forwarders[label] = f"{target_dll.lower()}.dll!{target_name}"


def parse_pe(data: bytes | mmap.mmap, name: str = "<pe>") -> PeInfo:
    """Parse machine, imports, delay imports and exports; MalformedBinary when any of them is unreadable."""
    import pefile

    try:
        pe = pefile.PE(data=data, fast_load=True)
    except (pefile.PEFormatError, ValueError, IndexError, AttributeError, struct.error, OverflowError) as exc:
        raise MalformedBinary(f"{name}: malformed PE file ({exc})") from None
    try:
        directories = pe.OPTIONAL_HEADER.DATA_DIRECTORY
        is64 = pe.OPTIONAL_HEADER.Magic == pefile.OPTIONAL_HEADER_MAGIC_PE_PLUS
        image = _Image(pe, data)
        info = PeInfo(machine=pe.FILE_HEADER.Machine)
        if len(directories) > pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_IMPORT"]:
            imports = directories[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_IMPORT"]]
            if imports.VirtualAddress and imports.Size:
                _read_imports(image, is64, imports.VirtualAddress, info)
        if len(directories) > pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT"]:
            delay = directories[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT"]]
            if delay.VirtualAddress and delay.Size:
                _read_delay_imports(image, is64, delay.VirtualAddress, pe.OPTIONAL_HEADER.ImageBase, info)
        if directories:
            _read_exports(image, directories[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_EXPORT"]], info)
    except (pefile.PEFormatError, ValueError, IndexError, AttributeError, struct.error, OverflowError) as exc:
        raise MalformedBinary(f"{name}: malformed PE file ({exc})") from None
    finally:
        pe.close()
    return info
