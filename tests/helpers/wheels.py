"""Real wheels the tests pin (fetched through the project's fetch layer by conftest's `pypi_file`) and
the tools to take a wheel apart and put a changed one together with a matching RECORD."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

MARKUPSAFE_X86 = (
    "markupsafe",
    "2.1.5",
    "MarkupSafe-2.1.5-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "b91c037585eba9095565a3556f611e3cbfaa42ca1e865f7b8015fe5c7336d5a5",
)
MARKUPSAFE_MUSL = (
    "markupsafe",
    "2.1.5",
    "MarkupSafe-2.1.5-cp311-cp311-musllinux_1_1_x86_64.whl",
    "3a57fdd7ce31c7ff06cdfbf31dafa96cc533c21e443d57f5b1ecc6cdc668ec7f",
)
MARKUPSAFE_WIN = (
    "markupsafe",
    "2.1.5",
    "MarkupSafe-2.1.5-cp311-cp311-win_amd64.whl",
    "2b7c57a4dfc4f16f7142221afe5ba4e093e09e728ca65c51f5620c9aaeb9a617",
)
NUMPY_2_MUSL = (
    "numpy",
    "2.2.6",
    "numpy-2.2.6-cp311-cp311-musllinux_1_2_x86_64.whl",
    "9551a499bf125c1d4f9e250377c1ee2eddd02e01eac6644c080162c0c51778ab",
)


def members_of(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist() if not info.is_dir()}


def write_wheel(path: Path, members: dict[str, bytes]) -> Path:
    """A wheel of `members` with its RECORD rewritten to match them (so a mutation reaches the parsers,
    not only the RECORD check)."""
    record_name = next(n for n in members if n.endswith(".dist-info/RECORD"))
    lines = []
    for name, data in members.items():
        if name == record_name:
            continue
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append(f"{name},sha256={digest},{len(data)}")
    members = {**members, record_name: ("\n".join([*lines, f"{record_name},,"]) + "\n").encode()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path
