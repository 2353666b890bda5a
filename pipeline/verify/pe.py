"""PE (Windows DLL/.pyd) reading for the symbol checker: machine, imports, delay imports, exports.

pefile is used with fast_load and then asked for the three data directories the loader consults, from the
bytes already in memory (nothing is written to disk).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from pipeline.verify.elf import MalformedBinary

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


def _entries(entries: object) -> dict[str, list[PeImport]]:
    result: dict[str, list[PeImport]] = {}
    for entry in entries or []:  # type: ignore[attr-defined]
        dll = entry.dll.decode("ascii", "replace")
        functions = result.setdefault(dll, [])
        for item in entry.imports:
            if item.import_by_ordinal or item.name is None:
                functions.append(PeImport(None, item.ordinal))
            else:
                functions.append(PeImport(item.name.decode("ascii", "replace"), None))
    return result


def _read_exports(pe: object, data: bytes, info: PeInfo) -> None:
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
        stop = data.index(b"\0", position, position + 4096)
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


def parse_pe(data: bytes, name: str = "<pe>") -> PeInfo:
    import pefile

    try:
        pe = pefile.PE(data=data, fast_load=True)
        directories = pefile.DIRECTORY_ENTRY
        pe.parse_data_directories(
            directories=[
                directories["IMAGE_DIRECTORY_ENTRY_IMPORT"],
                directories["IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT"],
            ]
        )
    except (pefile.PEFormatError, ValueError, IndexError, AttributeError) as exc:
        raise MalformedBinary(f"{name}: malformed PE file ({exc})") from None
    info = PeInfo(machine=pe.FILE_HEADER.Machine)
    info.imports = _entries(getattr(pe, "DIRECTORY_ENTRY_IMPORT", None))
    info.delay_imports = _entries(getattr(pe, "DIRECTORY_ENTRY_DELAY_IMPORT", None))
    try:
        _read_exports(pe, data, info)
    except (ValueError, struct.error, IndexError) as exc:
        raise MalformedBinary(f"{name}: malformed PE export directory ({exc})") from None
    finally:
        pe.close()
    return info
