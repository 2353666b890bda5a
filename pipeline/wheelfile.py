"""Re-pack an unpacked wheel into a valid, reproducible wheel, and read a wheel's metadata.

A patched wheel must be a *valid* wheel: RECORD lists every file with its sha256 (urlsafe base64, no
padding) and size, so installers and `rewheel verify` accept it (python-build-standalone once re-zipped a
patched pip and left RECORD stale). It must also be *reproducible*: the same tree gives the same bytes, so
the sha256 of a patched wheel can be pinned and compared. For that every member gets the same timestamp
(SOURCE_DATE_EPOCH when set, else 1980-01-01, the zip epoch), fixed permissions (0644, or 0755 when the
file is executable), a fixed compression level and a fixed order: files sorted by path, the .dist-info
folder last and RECORD its last member, as the wheel spec recommends.
Byte-for-byte reproducibility across machines also assumes the same zlib (deflate output may differ between
zlib versions); on one machine it always holds.
"""

from __future__ import annotations

import base64
import csv
import email.parser
import hashlib
import io
import os
import re
import stat
import time
import zipfile
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename

from pipeline.errors import RewheelError
from pipeline.util import atomic_path, shareable_mode

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
COMPRESS_LEVEL = 6
# A build tag must start with a digit (wheel spec) and cannot contain "-" (the file name separator).
BUILD_TAG_RE = re.compile(r"^\d[A-Za-z0-9_.]*$")
# Signatures of the old RECORD cannot be valid for the new one: drop them rather than ship a lie.
_SIGNATURE_FILES = ("RECORD.jws", "RECORD.p7s")


class WheelError(RewheelError):
    """An unpacked tree or a wheel file is not a usable wheel."""


@dataclass(frozen=True)
class WheelMetadata:
    name: str  # as in METADATA ("pip")
    version: str
    dist_info: str  # "pip-23.2.1.dist-info"
    tags: tuple[str, ...]  # WHEEL Tag lines, in file order ("py3-none-any",)
    build: str | None  # WHEEL Build line
    root_is_purelib: bool
    wheel_fields: Message  # every field of WHEEL

    @property
    def compressed_tag(self) -> str:
        return compress_tags(self.tags)


def record_hash(data: bytes) -> str:
    """RECORD's hash form: sha256=<urlsafe base64 without padding>."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")
    return f"sha256={digest}"


def compress_tags(tags: tuple[str, ...] | list[str]) -> str:
    """The file-name tag triple for a set of tags ("py2.py3-none-any"); only a full product can be compressed."""
    if not tags:
        raise WheelError("WHEEL has no Tag lines")
    triples = [tuple(t.split("-")) for t in tags]
    if any(len(t) != 3 for t in triples):
        raise WheelError(f"WHEEL has a malformed Tag among {list(tags)}")
    parts: list[list[str]] = [[], [], []]
    for triple in triples:
        for index, value in enumerate(triple):
            if value not in parts[index]:
                parts[index].append(value)
    product = {(a, b, c) for a in parts[0] for b in parts[1] for c in parts[2]}
    if product != set(triples):
        raise WheelError(f"WHEEL tags {list(tags)} cannot be expressed in one wheel file name")
    return "-".join(".".join(part) for part in parts)


def _parse_fields(data: bytes) -> Message:
    return email.parser.BytesParser().parsebytes(data)


def find_dist_info(tree: Path) -> Path:
    found = [p for p in tree.iterdir() if p.is_dir() and p.name.endswith(".dist-info")]
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise WheelError(f"{tree}: a wheel has exactly one top-level .dist-info folder, found {names}")
    return found[0]


def _metadata_from(dist_info: str, wheel_bytes: bytes, metadata_bytes: bytes, where: str) -> WheelMetadata:
    wheel_fields = _parse_fields(wheel_bytes)
    metadata = _parse_fields(metadata_bytes)
    name, version = metadata.get("Name"), metadata.get("Version")
    if not name or not version:
        raise WheelError(f"{where}: METADATA lacks Name or Version")
    build = wheel_fields.get("Build")
    return WheelMetadata(
        name=str(name),
        version=str(version),
        dist_info=dist_info,
        tags=tuple(str(t) for t in wheel_fields.get_all("Tag") or ()),
        build=str(build) if build else None,
        root_is_purelib=str(wheel_fields.get("Root-Is-Purelib", "")).strip().lower() == "true",
        wheel_fields=wheel_fields,
    )


def read_wheel_metadata(wheel_or_tree: Path) -> WheelMetadata:
    """Name, version, tags and build tag of a .whl file or an unpacked wheel tree."""
    path = Path(wheel_or_tree)
    if path.is_dir():
        dist_info = find_dist_info(path)
        try:
            return _metadata_from(
                dist_info.name,
                (dist_info / "WHEEL").read_bytes(),
                (dist_info / "METADATA").read_bytes(),
                str(path),
            )
        except FileNotFoundError as exc:
            raise WheelError(f"{path}: {Path(exc.filename).name} missing from {dist_info.name}") from None
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            dist_infos = sorted(
                {n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")}
            )
            if len(dist_infos) != 1:
                raise WheelError(f"{path.name}: expected one .dist-info folder, found {dist_infos or 'none'}")
            dist_info_name = dist_infos[0]
            try:
                wheel_bytes = archive.read(f"{dist_info_name}/WHEEL")
                metadata_bytes = archive.read(f"{dist_info_name}/METADATA")
            except KeyError as exc:
                raise WheelError(f"{path.name}: {exc.args[0]}") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise WheelError(f"{path.name}: not a readable wheel: {exc}") from None
    return _metadata_from(dist_info_name, wheel_bytes, metadata_bytes, path.name)


def wheel_filename(metadata: WheelMetadata, build_tag: str | None) -> str:
    """The file name: distribution and version escaped as the wheel spec says, then build tag and tags."""
    name = re.sub(r"[-_.]+", "_", metadata.name)
    version = metadata.version.replace("-", "_")
    build = f"-{build_tag}" if build_tag else ""
    return f"{name}-{version}{build}-{metadata.compressed_tag}.whl"


def _wheel_file_with_build(original: bytes, build_tag: str | None) -> bytes:
    """WHEEL with its Build line set to build_tag (other lines untouched, in order)."""
    if build_tag is None:
        return original
    lines = [ln for ln in original.decode("utf-8").splitlines() if not ln.lower().startswith("build:")]
    while lines and not lines[-1].strip():
        lines.pop()
    lines.append(f"Build: {build_tag}")
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def _timestamp() -> tuple[int, int, int, int, int, int]:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        return ZIP_EPOCH
    try:
        seconds = int(epoch)
    except ValueError:
        raise WheelError(f"SOURCE_DATE_EPOCH must be an integer, got {epoch!r}") from None
    moment = time.gmtime(max(seconds, 315532800))  # zip cannot store dates before 1980
    return (moment.tm_year, moment.tm_mon, moment.tm_mday, moment.tm_hour, moment.tm_min, moment.tm_sec)


def _member_order(path: str, dist_info: str) -> tuple[int, str]:
    if path == f"{dist_info}/RECORD":
        return (3, path)
    if path.startswith(f"{dist_info}/"):
        return (2, path)
    return (0, path)


def _collect(tree: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames.sort()
        for filename in filenames:
            full = Path(dirpath) / filename
            relative = full.relative_to(tree).as_posix()
            if full.is_symlink():
                raise WheelError(f"{tree}: {relative} is a symbolic link; wheels cannot carry links")
            if not full.is_file():
                raise WheelError(f"{tree}: {relative} is not a regular file")
            files[relative] = full
    return files


def repack_wheel(tree: Path, out_dir: Path, *, build_tag: str | None = None) -> Path:
    """Zip the unpacked wheel `tree` into `out_dir` as a valid wheel with a regenerated RECORD.

    With `build_tag`, WHEEL gets `Build: <tag>` and the file name carries it (pip prefers a build-tagged
    file over an untagged one of the same version and tags). Without, WHEEL's own Build line (if any) is
    kept. The tree is not modified. Returns the wheel's path."""
    tree = Path(tree)
    if build_tag is not None and not BUILD_TAG_RE.match(build_tag):
        raise WheelError(f"build tag {build_tag!r} must start with a digit and contain no '-' or spaces")
    metadata = read_wheel_metadata(tree)
    dist_info = metadata.dist_info
    files = _collect(tree)
    record_path = f"{dist_info}/RECORD"
    for dropped in (record_path, *(f"{dist_info}/{s}" for s in _SIGNATURE_FILES)):
        files.pop(dropped, None)

    stamp = _timestamp()
    effective_build = build_tag if build_tag is not None else metadata.build
    filename = wheel_filename(metadata, effective_build)
    out_dir.mkdir(parents=True, exist_ok=True)
    destination = out_dir / filename
    rows: list[tuple[str, str, str]] = []
    # A wheel readable by a web server, like the ones pip and build write.
    with (
        atomic_path(destination, mode=shareable_mode()) as partial,
        zipfile.ZipFile(
            partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL
        ) as archive,
    ):

        def add(name: str, data: bytes, executable: bool) -> None:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.create_system = 3  # Unix, so the permission bits below are honoured
            info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data, compresslevel=COMPRESS_LEVEL)

        for name in sorted(files, key=lambda n: _member_order(n, dist_info)):
            path = files[name]
            data = path.read_bytes()
            if name == f"{dist_info}/WHEEL":
                data = _wheel_file_with_build(data, build_tag)
            add(name, data, bool(path.stat().st_mode & 0o111))
            rows.append((name, record_hash(data), str(len(data))))
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerows(rows)
        writer.writerow((record_path, "", ""))
        add(record_path, buffer.getvalue().encode("utf-8"), False)
    return destination


def record_problems(wheel: Path) -> list[str]:
    """Everything wrong between a wheel's RECORD and its members (empty when RECORD is exact)."""
    problems: list[str] = []
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        records = [n for n in names if n.endswith(".dist-info/RECORD") and n.count("/") == 1]
        if len(records) != 1:
            return [f"{wheel.name}: expected one RECORD, found {len(records)}"]
        listed: dict[str, tuple[str, str]] = {}
        for row in csv.reader(io.StringIO(archive.read(records[0]).decode("utf-8"))):
            if row:
                listed[row[0]] = (row[1] if len(row) > 1 else "", row[2] if len(row) > 2 else "")
        for name in names:
            if name == records[0] or name.endswith((".dist-info/RECORD.jws", ".dist-info/RECORD.p7s")):
                continue
            if name not in listed:
                problems.append(f"{name}: not listed in RECORD")
                continue
            data = archive.read(name)
            digest, size = listed.pop(name)
            if digest != record_hash(data):
                problems.append(f"{name}: RECORD hash {digest} does not match the content")
            if size != str(len(data)):
                problems.append(f"{name}: RECORD size {size} does not match {len(data)}")
        listed.pop(records[0], None)
        problems += [f"{name}: listed in RECORD but missing" for name in listed]
    return problems


def check_wheel_name(wheel: Path) -> None:
    """Raise WheelError when the file name disagrees with the wheel's own metadata."""
    from packaging.version import Version

    name, version, build, _tags = parse_wheel_filename(wheel.name)
    metadata = read_wheel_metadata(wheel)
    if canonicalize_name(metadata.name) != name or version != Version(metadata.version):
        raise WheelError(
            f"{wheel.name}: file name does not match METADATA {metadata.name} {metadata.version}"
        )
    named_build = f"{build[0]}{build[1]}" if build else None
    if named_build != metadata.build:
        raise WheelError(
            f"{wheel.name}: build tag {named_build} does not match WHEEL's Build: {metadata.build}"
        )
