"""What the index needs to know about one wheel: name, version, hashes, Requires-Python, core metadata.

Each wheel is read once, when it enters the index; the result is kept in the project's JSON page (see
static.py) so later page rewrites never reopen the wheel.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

from packaging.tags import Tag
from packaging.utils import (
    BuildTag,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from pipeline.errors import RewheelError

MAX_WHEEL_BYTES = 4 << 30  # PyPI's own ceiling is far lower; larger is a mistake, not a wheel
MAX_METADATA_BYTES = 16 << 20
# PEP 508's name rule: letters or digits at both ends, so '..', '...' or '-' never become a folder name.
PROJECT_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)


class PublishError(RewheelError):
    """A file cannot enter the index, or the index cannot be changed as asked."""


@dataclass
class FileEntry:
    """One distribution file of a project, as the index pages show it."""

    filename: str
    project: str  # normalized (PEP 503) name
    version: str
    sha256: str
    size: int
    metadata_sha256: str
    requires_python: str | None = None
    upload_time: str | None = None  # ISO 8601, UTC, "Z" suffix (PEP 700)
    yanked: str | None = None  # None: not yanked; "" yanked without a reason; else the reason
    verification: str | None = None  # how the wheel was cleared for publishing
    proof_sha256: str | None = None  # its proof record (<file>.proof.json beside it), when it has one

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> FileEntry:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)  # type: ignore[arg-type]


WheelIdentity = tuple[NormalizedName, Version, BuildTag, frozenset[Tag]]


def wheel_identity(filename: str) -> WheelIdentity:
    """What a wheel file name means to an installer: the PEP 503 project name, the PEP 440 version, the
    build tag and the set of compatibility tags. Two names with one identity (`demo-1.0-...` and
    `DEMO-1.0.0-...`) are the same file to pip, so an index may hold only one of them."""
    if not filename.endswith(".whl"):
        raise PublishError(f"{filename}: only wheels (.whl) can be published")
    if not PROJECT_NAME.match(filename.split("-", 1)[0]):
        raise PublishError(f"{filename}: not a valid project name (PEP 508: letters or digits at both ends)")
    try:
        name, version, build, tags = parse_wheel_filename(filename)
    except (InvalidWheelFilename, InvalidVersion) as exc:
        raise PublishError(f"{filename}: not a valid wheel file name: {exc}") from None
    return name, version, build, tags


def project_of(filename: str) -> NormalizedName:
    """The normalized project name from a wheel file name (refusing anything that is not a wheel name)."""
    return wheel_identity(filename)[0]


def _metadata_header(metadata: bytes, field: str) -> str | None:
    """The first value of a METADATA header field (headers end at the first blank line)."""
    prefix = field.lower() + ":"
    for raw in metadata.decode("utf-8", errors="replace").splitlines():
        if not raw.strip():
            break
        if raw.lower().startswith(prefix):
            return raw[len(prefix) :].strip()
    return None


def read_wheel(path: Path, data: bytes | None = None) -> tuple[FileEntry, bytes]:
    """Inspect a wheel: its FileEntry (without upload time or yank state) and its METADATA bytes.

    The bytes are read once and hashed and unzipped from memory: wheels entering an index are small and
    reading twice would double the cost of a full re-index."""
    filename = path.name
    project = project_of(filename)
    version = filename.split("-")[1]  # project_of validated the name; its second part is the version
    if data is None:
        size = path.stat().st_size
        if size > MAX_WHEEL_BYTES:
            raise PublishError(f"{filename}: {size} bytes is larger than any wheel an index should hold")
        data = path.read_bytes()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise PublishError(f"{filename}: not a zip archive: {exc}") from None
    with archive:
        candidates = [
            n for n in archive.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
        ]
        if len(candidates) != 1:
            raise PublishError(
                f"{filename}: expected one top-level *.dist-info/METADATA, found {len(candidates)}"
            )
        info = archive.getinfo(candidates[0])
        if info.file_size > MAX_METADATA_BYTES:
            raise PublishError(f"{filename}: METADATA is {info.file_size} bytes; refusing")
        try:
            metadata = archive.read(info)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError) as exc:
            raise PublishError(f"{filename}: its METADATA cannot be read: {exc}") from None
    meta_name = _metadata_header(metadata, "Name")
    meta_version = _metadata_header(metadata, "Version")
    if meta_name is None or canonicalize_name(meta_name) != project:
        raise PublishError(f"{filename}: METADATA Name {meta_name!r} does not match the file name")
    if meta_version is None:
        raise PublishError(f"{filename}: METADATA has no Version")
    try:
        same_version = Version(meta_version) == Version(version)
    except InvalidVersion:
        same_version = False
    if not same_version:
        raise PublishError(f"{filename}: METADATA Version {meta_version!r} does not match the file name")
    entry = FileEntry(
        filename=filename,
        project=project,
        version=version,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        metadata_sha256=hashlib.sha256(metadata).hexdigest(),
        requires_python=_metadata_header(metadata, "Requires-Python"),
    )
    return entry, metadata
