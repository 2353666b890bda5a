"""Reading ELF facts the tests assert on: an executable's program interpreter, a static library's machines."""

from __future__ import annotations

from pathlib import Path


def interpreter_of(executable: Path) -> bytes | None:
    """The ELF program interpreter (PT_INTERP) of an executable, or None for a static one."""
    from elftools.elf.elffile import ELFFile

    with executable.open("rb") as handle:
        for segment in ELFFile(handle).iter_segments():
            if segment.header.p_type == "PT_INTERP":
                return segment.get_interp_name().encode()
    return None


def ar_members_machines(archive: Path) -> set[str]:
    """The ELF machine of every object in a static library (ar format read directly)."""
    import io

    from elftools.elf.elffile import ELFFile

    data = archive.read_bytes()
    assert data.startswith(b"!<arch>\n")
    machines, offset = set(), 8
    while offset + 60 <= len(data):
        header = data[offset : offset + 60]
        size = int(header[48:58].decode().strip())
        body = data[offset + 60 : offset + 60 + size]
        if body.startswith(b"\x7fELF"):
            machines.add(str(ELFFile(io.BytesIO(body)).header["e_machine"]))
        offset += 60 + size + (size & 1)
    return machines
