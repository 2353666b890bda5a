"""PE (Windows DLL/.pyd) reading for the symbol checker: machine, imports, delay imports, exports.

pefile is used with fast_load and then asked for the import and delay-import directories, from the bytes
already in memory (or mapped); the export directory is read here. A garbled import table is a malformed
binary (exit 2), not a module that imports nothing: pefile stops at the first bad descriptor and records a
warning, so its warnings about imports are turned into MalformedBinary rather than read past.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field

from pipeline.verify.elf import MalformedBinary

# pefile cuts import names at MAX_IMPORT_NAME_LENGTH (512) characters; MSVC's mangled C++ names run to
# 4,096 and more (pyarrow), and the export side is read whole, so a cut name never matches its export.
# Names are bounded by the file they sit in; this only has to be above any real one.
NAME_LENGTH_LIMIT = 1 << 16
# pefile stops after MAX_IMPORT_SYMBOLS (8,192) imports per file, a limit made for malware triage.
IMPORT_SYMBOLS_LIMIT = 1 << 20
_PEFILE_IMPORT_TROUBLE = (
    "error parsing the import",
    "error parsing the delay import",
    "too many errors parsing the",
    "damaged import table",
    "excessive number of imports",
    "error, too many imported symbols",
)

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


def _entries(entries: object, what: str, *, strict: bool = True) -> dict[str, list[PeImport]]:
    """DLL -> functions; unreadable names raise ValueError when strict, else the entry is left out."""
    result: dict[str, list[PeImport]] = {}
    for entry in entries or []:  # type: ignore[attr-defined]
        if entry.dll in (None, b"*invalid*", b""):
            if not strict:
                continue
            raise ValueError(f"{what} names a DLL that is not a file name ({entry.dll!r})")
        dll = entry.dll.decode("ascii", "replace")
        functions = result.setdefault(dll, [])
        for item in entry.imports:
            if item.import_by_ordinal:
                functions.append(PeImport(None, item.ordinal))
            elif item.name is None or item.name == b"*invalid*":
                if not strict:
                    continue
                # an import by name whose name pefile could not read: the table points outside the file
                # or at bytes no linker writes
                raise ValueError(f"{what} of {dll} has an unreadable function name")
            else:
                functions.append(PeImport(item.name.decode("ascii", "replace"), None))
    return result


def _read_exports(pe: object, data: bytes | mmap.mmap, info: PeInfo) -> None:
    """The export directory, read directly: pefile gives up on names it finds suspicious in large DLLs
    (OpenBLAS's 9,546 exports come back with 1,354 names missing), and the loader does not."""
    import pefile

    assert isinstance(pe, pefile.PE)
    entry = pe.OPTIONAL_HEADER.DATA_DIRECTORY[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_EXPORT"]]
    if not entry.VirtualAddress or not entry.Size:
        return
    start, end = entry.VirtualAddress, entry.VirtualAddress + entry.Size

    def offset(rva: int) -> int:
        position = pe.get_offset_from_rva(rva)
        if position is None or position >= len(data):
            raise ValueError(f"export RVA 0x{rva:x} outside the file")
        return int(position)

    def string(rva: int) -> str:
        position = offset(rva)
        stop = data.find(b"\0", position, position + NAME_LENGTH_LIMIT)
        if stop < 0:
            raise ValueError(f"export name at RVA 0x{rva:x} has no end")
        return data[position:stop].decode("ascii", "replace")

    (base, functions, names, functions_rva, names_rva, ordinals_rva) = struct.unpack_from(
        "<IIIIII", data, offset(entry.VirtualAddress) + 16
    )
    if functions > 1 << 20 or names > functions:
        raise ValueError("implausible export directory")
    addresses = struct.unpack_from(f"<{functions}I", data, offset(functions_rva)) if functions else ()
    name_rvas = struct.unpack_from(f"<{names}I", data, offset(names_rva)) if names else ()
    name_ordinals = struct.unpack_from(f"<{names}H", data, offset(ordinals_rva)) if names else ()
    named: dict[int, str] = {}
    for name_rva, index in zip(name_rvas, name_ordinals, strict=True):
        label = string(name_rva)
        named[index] = label
        info.exports.add(label)
    for index, address in enumerate(addresses):
        if not address:
            continue
        label = named.get(index, "")
        info.export_ordinals[base + index] = label
        if start <= address < end and label:  # the address points at "DLL.Function": a forwarder
            target_dll, _, target_name = string(address).partition(".")
            info.forwarders[label] = f"{target_dll.lower()}.dll!{target_name}"


def parse_pe(data: bytes | mmap.mmap, name: str = "<pe>") -> PeInfo:
    """Parse machine, imports, delay imports and exports; MalformedBinary when any of them is unreadable."""
    import pefile

    pefile.MAX_IMPORT_NAME_LENGTH = max(pefile.MAX_IMPORT_NAME_LENGTH, NAME_LENGTH_LIMIT)
    pefile.MAX_DLL_LENGTH = max(pefile.MAX_DLL_LENGTH, NAME_LENGTH_LIMIT)
    pefile.MAX_IMPORT_SYMBOLS = max(pefile.MAX_IMPORT_SYMBOLS, IMPORT_SYMBOLS_LIMIT)
    try:
        pe = pefile.PE(data=data, fast_load=True)
    except (pefile.PEFormatError, ValueError, IndexError, AttributeError, struct.error, OverflowError) as exc:
        raise MalformedBinary(f"{name}: malformed PE file ({exc})") from None
    try:
        directories = pefile.DIRECTORY_ENTRY
        pe.parse_data_directories(directories=[directories["IMAGE_DIRECTORY_ENTRY_IMPORT"]])
        trouble = [w for w in pe.get_warnings() if w.lower().startswith(_PEFILE_IMPORT_TROUBLE)]
        if trouble:
            raise ValueError(f"garbled import table: {trouble[0]}")
        # Delay-import descriptors are read one at a time, by the helper, when a function is first called:
        # the loader never walks the table, so bytes after the last real descriptor (GNU ld leaves some) do
        # not stop a module from loading. Their problems are not fatal here either; what pefile read is used.
        pe.parse_data_directories(directories=[directories["IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT"]])
        info = PeInfo(machine=pe.FILE_HEADER.Machine)
        info.imports = _entries(getattr(pe, "DIRECTORY_ENTRY_IMPORT", None), "the import table")
        info.delay_imports = _entries(
            getattr(pe, "DIRECTORY_ENTRY_DELAY_IMPORT", None), "the delay-import table", strict=False
        )
        _read_exports(pe, data, info)
    except (
        pefile.PEFormatError,
        ValueError,
        IndexError,
        AttributeError,
        KeyError,
        TypeError,
        struct.error,
        OverflowError,
    ) as exc:
        raise MalformedBinary(f"{name}: malformed PE file ({exc})") from None
    finally:
        pe.close()
    return info
