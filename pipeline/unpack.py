"""Safe unpacking of sdists (tar, zip) and wheels (zip).

Every member is checked before anything is written: no absolute paths, no `..`, no drive letters, no
device files, no link that points outside the destination, no member written through a link, and bounded
sizes (total, per member, member count, compression ratio). rewheel writes each file itself rather than
calling extractall, so the checks are the whole story. Any violation is an UnsafeArchive error and the
partly written destination is removed: nothing is left behind, nothing lands outside.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from pipeline.errors import UnsafeArchive


@dataclass(frozen=True)
class Limits:
    max_total_bytes: int = 4 << 30
    max_member_bytes: int = 2 << 30
    max_members: int = 200_000
    max_ratio: int = 200  # a zip member expanding more than 200x is a bomb, not a source file
    # The same bound for the archive as a whole, above a floor: many members just under the per-member floor
    # (4,000 of 1 MiB of zeros: 4.5 MB compressed, 4 GB unpacked) are a bomb too.
    ratio_floor_bytes: int = 64 << 20


DEFAULT_LIMITS = Limits()


def safe_member_path(name: str, archive: Path) -> PurePosixPath:
    """Validate one member name and return it as a relative path."""
    if not name or "\x00" in name:
        raise UnsafeArchive(f"{archive.name}: member with an empty or NUL-containing name")
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or (len(normalized) > 1 and normalized[1] == ":"):
        raise UnsafeArchive(f"{archive.name}: absolute path {name!r}")
    parts = [p for p in normalized.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive(f"{archive.name}: path escapes the destination: {name!r}")
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def _check_inside(dest: Path, relative: PurePosixPath, archive: Path, original: str) -> Path:
    """The real path of a member's destination must stay inside dest, even through existing links."""
    target = dest.joinpath(*relative.parts)
    real_parent = Path(os.path.realpath(target.parent))
    if real_parent != dest and dest not in real_parent.parents:
        raise UnsafeArchive(
            f"{archive.name}: {original!r} would be written through a link outside the destination"
        )
    if target.is_symlink():
        raise UnsafeArchive(f"{archive.name}: {original!r} would overwrite a link")
    return target


def _write(
    stream: IO[bytes], target: Path, size_left: int, archive: Path, name: str, mode: int | None
) -> int:
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(target, "xb") as out:
        while block := stream.read(1 << 20):
            written += len(block)
            if written > size_left:
                raise UnsafeArchive(f"{archive.name}: {name!r} expands beyond the size limit")
            out.write(block)
    if mode is not None:
        # Keep the executable bits (scripts), never setuid/setgid/sticky.
        os.chmod(target, 0o755 if mode & 0o111 else 0o644)
    return written


def unpack(archive: Path, dest: Path, limits: Limits = DEFAULT_LIMITS) -> Path:
    """Unpack a .whl/.zip/.tar.gz/.tar.bz2/.tgz into dest (created; must not exist or be empty)."""
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise UnsafeArchive(f"{dest}: destination is not empty")
    dest.mkdir(parents=True, exist_ok=True)
    dest = Path(os.path.realpath(dest))
    try:
        name = archive.name
        if name.endswith((".whl", ".zip")):
            _unpack_zip(archive, dest, limits)
        elif name.endswith((".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar")):
            _unpack_tar(archive, dest, limits)
        else:
            raise UnsafeArchive(f"{archive.name}: unknown archive type")
    except OSError as exc:  # an archive that makes the file system refuse (a name too long, ...)
        shutil.rmtree(dest, ignore_errors=True)
        raise UnsafeArchive(f"{archive.name}: cannot be unpacked: {exc.strerror or exc}") from None
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return dest


def _check_archive_ratio(archive: Path, unpacked: int, limits: Limits) -> None:
    if unpacked > limits.ratio_floor_bytes and unpacked > limits.max_ratio * max(archive.stat().st_size, 1):
        raise UnsafeArchive(
            f"{archive.name}: {unpacked} bytes unpacked from {archive.stat().st_size} is a compression ratio "
            "typical of a zip bomb"
        )


def _unpack_zip(archive: Path, dest: Path, limits: Limits) -> None:
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnsafeArchive(f"{archive.name}: not a readable zip archive: {exc}") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_members:
            raise UnsafeArchive(
                f"{archive.name}: {len(infos)} members exceed the limit of {limits.max_members}"
            )
        declared = sum(i.file_size for i in infos)
        if declared > limits.max_total_bytes:
            raise UnsafeArchive(f"{archive.name}: {declared} bytes uncompressed exceed the limit")
        _check_archive_ratio(archive, declared, limits)
        total = 0
        for info in infos:
            relative = safe_member_path(info.filename, archive)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise UnsafeArchive(f"{archive.name}: symbolic link member {info.filename!r} is not allowed")
            if info.is_dir():
                _check_inside(dest, relative, archive, info.filename).mkdir(parents=True, exist_ok=True)
                continue
            if info.file_size > limits.max_member_bytes:
                raise UnsafeArchive(f"{archive.name}: {info.filename!r} is larger than the member limit")
            if (
                info.compress_size
                and info.file_size / info.compress_size > limits.max_ratio
                and info.file_size > 1 << 20
            ):
                raise UnsafeArchive(
                    f"{archive.name}: {info.filename!r} has a compression ratio typical of a zip bomb"
                )
            target = _check_inside(dest, relative, archive, info.filename)
            budget = min(limits.max_member_bytes, limits.max_total_bytes - total)
            try:
                with zf.open(info) as stream:
                    total += _write(stream, target, budget, archive, info.filename, mode or None)
            except FileExistsError:
                raise UnsafeArchive(f"{archive.name}: duplicate member {info.filename!r}") from None
            except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                raise UnsafeArchive(f"{archive.name}: corrupt member {info.filename!r}: {exc}") from None


def _unpack_tar(archive: Path, dest: Path, limits: Limits) -> None:
    try:
        tf = tarfile.open(archive)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise UnsafeArchive(f"{archive.name}: not a readable tar archive: {exc}") from None
    links: list[tuple[PurePosixPath, str, tarfile.TarInfo]] = []
    with tf:
        total = 0
        count = 0
        try:
            for member in tf:
                count += 1
                if count > limits.max_members:
                    raise UnsafeArchive(
                        f"{archive.name}: more members than the limit of {limits.max_members}"
                    )
                relative = safe_member_path(member.name, archive)
                if member.isdir():
                    _check_inside(dest, relative, archive, member.name).mkdir(parents=True, exist_ok=True)
                elif member.isreg():
                    if member.size > limits.max_member_bytes or total + member.size > limits.max_total_bytes:
                        raise UnsafeArchive(f"{archive.name}: {member.name!r} exceeds the size limit")
                    _check_archive_ratio(archive, total + member.size, limits)
                    target = _check_inside(dest, relative, archive, member.name)
                    stream = tf.extractfile(member)
                    assert stream is not None
                    if target.exists():
                        target.unlink()  # tar allows a later member to replace an earlier one
                    total += _write(
                        stream, target, limits.max_member_bytes, archive, member.name, member.mode
                    )
                elif member.issym() or member.islnk():
                    # Links are created last, so no later member can be written through one.
                    links.append((relative, member.linkname, member))
                else:
                    raise UnsafeArchive(
                        f"{archive.name}: special file {member.name!r} (device or fifo) is not allowed"
                    )
        except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
            if isinstance(exc, UnsafeArchive):
                raise
            raise UnsafeArchive(f"{archive.name}: corrupt tar archive: {exc}") from None
    symlinks = {link.parts for link, _, member in links if member.issym()}
    for link, linkname, member in links:
        _make_link(dest, link, linkname, member, archive, symlinks)


def _link_points_to(
    relative: PurePosixPath,
    linkname: str,
    member: tarfile.TarInfo,
    archive: Path,
    dest: Path,
    symlinks: set[tuple[str, ...]],
) -> tuple[str, ...]:
    """Where a link points, as parts under dest, walking its target one component at a time.

    Links to links are refused: a target that passes through any symbolic link (one of the archive's, or
    one already on disk) could be redirected by it, so checking the target's text would not be enough
    (`l1 -> ../..`, then `l2 -> l1/..` points out although its text stays inside). Without links in the
    way, the walk on paper is the walk the kernel will make, and `..` above dest is refused."""
    if not linkname:
        raise UnsafeArchive(f"{archive.name}: link {member.name!r} has an empty target")
    if "\x00" in linkname or linkname.startswith("/") or "\\" in linkname:
        raise UnsafeArchive(f"{archive.name}: link {member.name!r} points outside: {linkname!r}")
    # A symbolic link is relative to its folder; a hard link to the archive root.
    walked = list(relative.parts[:-1]) if member.issym() else []
    for part in linkname.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not walked:
                raise UnsafeArchive(
                    f"{archive.name}: link {member.name!r} points outside the destination: {linkname!r}"
                )
            walked.pop()
            continue
        walked.append(part)
        if tuple(walked) in symlinks or dest.joinpath(*walked).is_symlink():
            raise UnsafeArchive(
                f"{archive.name}: link {member.name!r} points through another link ({'/'.join(walked)}); "
                "links to links are refused"
            )
    return tuple(walked)


def _make_link(
    dest: Path,
    relative: PurePosixPath,
    linkname: str,
    member: tarfile.TarInfo,
    archive: Path,
    symlinks: set[tuple[str, ...]],
) -> None:
    points_to = _link_points_to(relative, linkname, member, archive, dest, symlinks)
    # Where the link itself goes: no folder on the way may be a link (a write through it lands elsewhere).
    for depth in range(1, len(relative.parts)):
        if dest.joinpath(*relative.parts[:depth]).is_symlink():
            raise UnsafeArchive(
                f"{archive.name}: {member.name!r} would be written through the link "
                f"{'/'.join(relative.parts[:depth])}"
            )
    target = dest.joinpath(*relative.parts)
    if target.is_symlink():
        raise UnsafeArchive(f"{archive.name}: {member.name!r} would replace another link")
    if target.is_dir():
        raise UnsafeArchive(f"{archive.name}: link {member.name!r} would replace a folder")
    source = dest.joinpath(*points_to)
    if member.islnk() and not (source.is_file() and not source.is_symlink()):
        raise UnsafeArchive(f"{archive.name}: hard link {member.name!r} to a missing file {linkname!r}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            target.unlink()  # tar allows a later member to replace an earlier file
        if member.issym():
            os.symlink(linkname, target)
        else:
            shutil.copyfile(source, target)  # a copy, not a hard link: the archive cannot alias files
    except OSError as exc:
        raise UnsafeArchive(
            f"{archive.name}: link {member.name!r} cannot be made: {exc.strerror or exc}"
        ) from None
