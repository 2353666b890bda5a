"""One pass over a wheel: every member read once, hashed for RECORD, paths checked, binaries parsed.

Nothing is extracted. Binaries (ELF or PE by magic) are parsed from the member bytes and only their
loader-relevant summary is kept. The archive is held to unpack's limits (member count, per-member and total
size, compression ratio) before any member is inflated, and memory stays bounded: members up to
IN_MEMORY_BYTES are inflated in one call, larger ones stream in chunks (a large binary is parsed from an
unlinked temporary file through mmap). Every way a zip can be broken ends in UnusableWheel (one line, exit 2).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import mmap
import os
import posixpath
import re
import stat
import struct
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypeVar

from pipeline.errors import RewheelError
from pipeline.unpack import DEFAULT_LIMITS, Limits
from pipeline.verify.elf import ElfInfo, is_elf, parse_elf
from pipeline.verify.pe import PeInfo, is_pe, parse_pe
from pipeline.verify.report import WheelReport
from pipeline.verify.wheelname import Tag, wheel_tags

try:  # ISA-L inflates the same deflate streams about 1.7x faster than zlib; it lacks wheels for rare platforms
    from isal import isal_zlib as _inflate
except ImportError:  # pragma: no cover - exercised where isal has no wheel
    import zlib as _inflate  # type: ignore[no-redef]

_INFLATE_ERROR: type[Exception] = _inflate.error  # type: ignore[assignment]  # isal's stubs call it an instance

SIGNATURE_FILES = ("RECORD", "RECORD.jws", "RECORD.p7s")
# Members up to this size are inflated in one call (fast); larger ones stream, so a few workers hold at most
# a few times this much. Binaries above it are parsed from a temporary file through mmap.
IN_MEMORY_BYTES = 64 << 20
CHUNK_BYTES = 1 << 20
HEAD_BYTES = 8


class UnusableWheel(RewheelError):
    """The wheel cannot be read at all (not a zip, bad file name, corrupt member)."""


@dataclass
class WheelContents:
    filename_tags: frozenset[Tag]
    wheel_file_tags: frozenset[Tag] | None
    root_is_purelib: bool | None
    members: set[str] = field(default_factory=set)
    elf: dict[str, ElfInfo] = field(default_factory=dict)
    pe: dict[str, PeInfo] = field(default_factory=dict)
    dist_info: str | None = None


def unsafe_reason(name: str, mode: int) -> str | None:
    if not name:
        return "has an empty name"
    if stat.S_ISLNK(mode):
        return "is a symbolic link"
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "is an absolute path"
    if ".." in name.split("/"):
        return "escapes the install folder with '..'"
    if "\x00" in name:
        return "contains a NUL character"
    return None


def _record_digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")


def read_wheel(
    path: Path, report: WheelReport, *, want_binaries: bool = True, limits: Limits = DEFAULT_LIMITS
) -> WheelContents:
    tags = wheel_tags(path.name)
    try:
        archive = zipfile.ZipFile(path)
    except UnicodeDecodeError as exc:
        raise UnusableWheel(
            f"{path.name}: not a readable zip archive: a member name flagged UTF-8 is not UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None
    except (
        zipfile.BadZipFile,
        OSError,
        EOFError,
        ValueError,
        struct.error,
        IndexError,
        OverflowError,
        NotImplementedError,  # "zip file version 25.0": a version field no zip writer uses
    ) as exc:
        # zipfile raises all of these on a broken end record or central directory
        raise UnusableWheel(f"{path.name}: not a readable zip archive: {exc}") from None
    contents = WheelContents(filename_tags=frozenset(tags), wheel_file_tags=None, root_is_purelib=None)
    digests: dict[str, tuple[str, int]] = {}
    texts: dict[str, str] = {}
    kinds: dict[str, str | None] = {}
    with archive:
        infos = archive.infolist()
        _check_limits(path, infos, limits)
        names = {i.filename for i in infos}
        dist_infos = sorted({n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")})
        contents.dist_info = next((d for d in dist_infos if f"{d}/WHEEL" in names), None)
        wanted_text = (
            {f"{contents.dist_info}/RECORD", f"{contents.dist_info}/WHEEL"} if contents.dist_info else set()
        )
        selected: list[zipfile.ZipInfo] = []
        seen: set[str] = set()
        for info in infos:
            name = info.filename
            if name and info.is_dir():
                continue
            reason = unsafe_reason(name, info.external_attr >> 16)
            if reason:
                report.add(
                    "unsafe-path",
                    f"member {name!r} {reason}; installers may write it outside site-packages",
                    file=name,
                )
                continue
            if name in seen:
                report.add("unsafe-path", f"member {name!r} appears twice in the archive", file=name)
                continue
            seen.add(name)
            selected.append(info)
        contents.members = seen
        if {t.platform for t in tags} == {"any"}:
            # a pure wheel's binaries are data (pip's launcher .exe files): only extension modules matter
            wanted_binaries: Callable[[str], bool] = lambda name: name.endswith((".so", ".pyd"))  # noqa: E731
        else:
            wanted_binaries = lambda name: want_binaries  # noqa: E731
        reader = _MemberReader(path, archive)
        try:
            work = _member_worker(path.name, reader, wanted_text, wanted_binaries)
            # inflate and hashlib release the GIL on large buffers: a small pool overlaps decompression,
            # hashing and parsing of different members. Results come back in archive order.
            workers = max(1, min(4, os.cpu_count() or 1))
            for name, digest, size, text, elf, pe, kind in _ordered_parallel_map(work, selected, workers):
                kinds[name] = kind
                if text is not None:
                    texts[name] = text
                if name.endswith("/RECORD") and name in wanted_text:
                    continue
                digests[name] = (digest, size)
                if elf is not None:
                    contents.elf[name] = elf
                if pe is not None:
                    contents.pe[name] = pe
        finally:
            reader.close()
    if want_binaries:
        _check_binary_suffixes(contents.filename_tags, kinds, report)
    _check_wheel_file(contents, texts.get(f"{contents.dist_info}/WHEEL"), report)
    _check_record(contents, texts.get(f"{contents.dist_info}/RECORD"), digests, report)
    return contents


def _check_limits(path: Path, infos: list[zipfile.ZipInfo], limits: Limits) -> None:
    """unpack's limits, applied to what the central directory declares before anything is inflated (the
    reader then holds every member to its declared size, so a lying header cannot get past them)."""
    if len(infos) > limits.max_members:
        raise UnusableWheel(f"{path.name}: {len(infos)} members exceed the limit of {limits.max_members}")
    declared = sum(i.file_size for i in infos)
    if declared > limits.max_total_bytes:
        raise UnusableWheel(
            f"{path.name}: {declared} bytes uncompressed exceed the limit of {limits.max_total_bytes}"
        )
    for info in infos:
        if info.file_size > limits.max_member_bytes:
            raise UnusableWheel(
                f"{path.name}: member {info.filename!r} has {info.file_size} bytes, more than the limit of {limits.max_member_bytes}"
            )
        # the same rule as unpack; a deflated member of zero compressed bytes cannot expand to anything
        if info.file_size > 1 << 20 and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise UnusableWheel(
                f"{path.name}: member {info.filename!r} expands {info.file_size} bytes from {info.compress_size}, "
                f"more than {limits.max_ratio}x: a zip bomb, not a wheel"
            )


T = TypeVar("T")
R = TypeVar("R")


def _ordered_parallel_map(function: Callable[[T], R], items: list[T], workers: int) -> Iterator[R]:
    """function over items on `workers` threads, results yielded in input order, exceptions re-raised.

    (concurrent.futures would do, but importing it costs more than verifying a small wheel.)"""
    if workers <= 1 or len(items) < 2:
        yield from map(function, items)
        return
    results: dict[int, tuple[bool, object]] = {}
    ready = threading.Condition()
    next_index = iter(range(len(items)))
    index_lock = threading.Lock()
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            with index_lock:
                index = next(next_index, None)
            if index is None:
                return
            try:
                outcome: tuple[bool, object] = (True, function(items[index]))
            except BaseException as exc:  # handed to the consumer, which re-raises it in order
                outcome = (False, exc)
            with ready:
                results[index] = outcome
                ready.notify_all()

    threads = [threading.Thread(target=run, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    try:
        for index in range(len(items)):
            with ready:
                while index not in results:
                    ready.wait()
                ok, value = results.pop(index)
            if not ok:
                raise value  # type: ignore[misc]
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        for thread in threads:
            thread.join()


class _MemberReader:
    """Reads members with positioned reads (thread-safe, no shared file position) and one inflate call for
    members up to IN_MEMORY_BYTES: faster than zipfile's streaming reader, whose CRC check RECORD's sha256
    makes redundant. Larger members are inflated in CHUNK_BYTES steps, hashed as they stream, and kept (in
    an unlinked temporary file, mapped read-only) only when they are binaries to parse."""

    def __init__(self, path: Path, archive: zipfile.ZipFile) -> None:
        self.path = path
        self.archive = archive
        self.fd = os.open(path, os.O_RDONLY)
        self.archive_size = os.fstat(self.fd).st_size
        self.lock = threading.Lock()

    def close(self) -> None:
        os.close(self.fd)

    def _corrupt(self, info: zipfile.ZipInfo, what: str) -> UnusableWheel:
        return UnusableWheel(f"{self.path.name}: member {info.filename!r} {what}")

    def _data_start(self, info: zipfile.ZipInfo) -> int:
        if info.flag_bits & 0x1:
            raise self._corrupt(info, "is encrypted")
        if not 0 <= info.header_offset <= self.archive_size - 30:
            raise self._corrupt(info, "has a local header outside the archive (broken central directory)")
        header = os.pread(self.fd, 30, info.header_offset)
        if len(header) != 30 or header[:4] != b"PK\x03\x04":
            raise self._corrupt(info, "has a corrupt local header")
        name_length, extra_length = struct.unpack_from("<HH", header, 26)
        start = info.header_offset + 30 + name_length + extra_length
        if info.compress_size < 0 or start + info.compress_size > self.archive_size:
            raise self._corrupt(info, "is truncated (its data runs past the end of the archive)")
        return start

    def read(self, info: zipfile.ZipInfo, keep: Callable[[bytes], bool]) -> MemberData:
        """The member's RECORD digest and size, its first bytes, and its whole content when keep(first bytes)."""
        start = self._data_start(info)
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            return self._read_streamed(info, self._zipfile_chunks(info), keep)
        if info.file_size > IN_MEMORY_BYTES or info.compress_size > IN_MEMORY_BYTES:
            return self._read_streamed(info, self._raw_chunks(info, start), keep)
        raw = os.pread(self.fd, info.compress_size, start)
        if len(raw) != info.compress_size:
            raise self._corrupt(info, "is truncated")
        if info.compress_type == zipfile.ZIP_STORED:
            data = raw
        else:
            inflater = _inflate.decompressobj(-15)
            try:
                # max_length bounds the output whatever the header claims: a lying size cannot balloon memory
                data = inflater.decompress(raw, info.file_size + 1)
            except _INFLATE_ERROR as exc:
                raise self._corrupt(info, f"is corrupt: {exc}") from None
            if not inflater.eof and len(data) <= info.file_size:
                raise self._corrupt(info, "is corrupt: its deflate stream ends early")
        if len(data) != info.file_size:
            raise self._corrupt(info, f"has {len(data)}+ bytes, the archive says {info.file_size}")
        head = data[:HEAD_BYTES]
        return MemberData(_record_digest(data), len(data), head, data if keep(head) else None)

    def _raw_chunks(self, info: zipfile.ZipInfo, start: int) -> Iterator[bytes]:
        """The member's uncompressed bytes in chunks of at most CHUNK_BYTES, never more than file_size."""
        position, left = start, info.compress_size
        inflater = _inflate.decompressobj(-15) if info.compress_type == zipfile.ZIP_DEFLATED else None
        produced = 0
        while left:
            raw = os.pread(self.fd, min(CHUNK_BYTES, left), position)
            if not raw:
                raise self._corrupt(info, "is truncated")
            position += len(raw)
            left -= len(raw)
            if inflater is None:
                produced += len(raw)
                if produced > info.file_size:
                    break
                yield raw
                continue
            while raw:
                try:
                    block = inflater.decompress(raw, CHUNK_BYTES)
                except _INFLATE_ERROR as exc:
                    raise self._corrupt(info, f"is corrupt: {exc}") from None
                raw = inflater.unconsumed_tail
                produced += len(block)
                if produced > info.file_size:
                    raise self._corrupt(info, f"expands beyond the {info.file_size} bytes the archive says")
                if block:
                    yield block
                if inflater.eof:
                    return
        if inflater is not None and not inflater.eof:
            raise self._corrupt(info, "is corrupt: its deflate stream ends early")

    def _zipfile_chunks(self, info: zipfile.ZipInfo) -> Iterator[bytes]:
        # other methods (bzip2, lzma) are rare in wheels: zipfile decodes them, one member at a time
        with self.lock:
            try:
                with self.archive.open(info) as stream:
                    while block := stream.read(CHUNK_BYTES):
                        yield block
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
                raise self._corrupt(info, f"is corrupt: {exc}") from None

    def _read_streamed(
        self, info: zipfile.ZipInfo, chunks: Iterator[bytes], keep: Callable[[bytes], bool]
    ) -> MemberData:
        digest = hashlib.sha256()
        size = 0
        head = b""
        spill: IO[bytes] | None = None
        decided = False
        pending: list[bytes] = []
        for block in chunks:
            digest.update(block)
            size += len(block)
            if size > info.file_size:
                raise self._corrupt(info, f"expands beyond the {info.file_size} bytes the archive says")
            if not decided:
                head = (head + block[:HEAD_BYTES])[:HEAD_BYTES]
                pending.append(block)
                if len(head) < HEAD_BYTES:
                    continue
                decided = True
                if keep(head):
                    spill = tempfile.TemporaryFile()
                    for earlier in pending:
                        spill.write(earlier)
                pending = []
            elif spill is not None:
                spill.write(block)
        if size != info.file_size:
            raise self._corrupt(info, f"has {size} bytes, the archive says {info.file_size}")
        record = "sha256=" + base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode("ascii")
        if not decided and keep(head):
            return MemberData(record, size, head, b"".join(pending))
        if spill is None:
            return MemberData(record, size, head, None)
        spill.flush()
        # the mapping is backed by the page cache, not the process heap; closing the file later frees it
        mapped = mmap.mmap(spill.fileno(), 0, access=mmap.ACCESS_READ)
        spill.close()
        return MemberData(record, size, head, mapped)


@dataclass
class MemberData:
    digest: str  # as RECORD writes it
    size: int
    head: bytes  # the first HEAD_BYTES bytes, for magic numbers
    data: bytes | mmap.mmap | None  # the whole content, when the reader was asked to keep it


MemberResult = tuple[str, str, int, "str | None", "ElfInfo | None", "PeInfo | None", str | None]

# magic numbers of the loadable formats wheels carry; the kind is reported for members with binary suffixes
_MACHO_MAGICS = (
    b"\xfe\xed\xfa\xce",
    b"\xce\xfa\xed\xfe",
    b"\xfe\xed\xfa\xcf",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",
)


def _binary_kind(head: bytes) -> str | None:
    if is_elf(head):
        return "elf"
    if is_pe(head):
        return "pe"
    if head[:4] in _MACHO_MAGICS:
        return "macho"
    return None


def _member_worker(
    wheel_name: str, reader: _MemberReader, wanted_text: set[str], want_binaries: Callable[[str], bool]
) -> Callable[[zipfile.ZipInfo], MemberResult]:
    def work(info: zipfile.ZipInfo) -> MemberResult:
        name = info.filename
        is_text = name in wanted_text
        binary_wanted = want_binaries(name)
        if is_text and info.file_size > IN_MEMORY_BYTES:
            raise UnusableWheel(
                f"{wheel_name}: {name} has {info.file_size} bytes, more than the {IN_MEMORY_BYTES} a wheel's metadata may have"
            )

        def keep(head: bytes) -> bool:
            if is_text:
                return True
            if not binary_wanted:
                return False
            return is_elf(head) or (is_pe(head) and _looks_like_pe_binary(name))

        member = reader.read(info, keep)
        data = member.data
        text = elf = pe = None
        try:
            if is_text and data is not None:
                text = bytes(data).decode("utf-8", "replace")
            elif data is not None:
                if is_elf(member.head):
                    elf = parse_elf(data, f"{wheel_name}:{name}")
                else:
                    pe = parse_pe(data, f"{wheel_name}:{name}")
        finally:
            if isinstance(data, mmap.mmap):
                data.close()
        return name, member.digest, member.size, text, elf, pe, _binary_kind(member.head)

    return work


def _looks_like_pe_binary(name: str) -> bool:
    # "MZ" is a common 2-byte prefix of text files too; only names the Windows loader would load count.
    return name.lower().endswith((".pyd", ".dll", ".exe"))


# What a member's suffix promises on each platform family, and the loader's complaint when it is not so.
_BINARY_SUFFIXES: dict[str, tuple[re.Pattern[str], str, str]] = {
    "linux": (re.compile(r"\.so(\.[0-9]+)*$"), "elf", "an ELF file (ld.so: 'invalid ELF header')"),
    "windows": (
        re.compile(r"\.(pyd|dll)$", re.IGNORECASE),
        "pe",
        "a PE file ('%1 is not a valid Win32 application')",
    ),
    "macos": (re.compile(r"\.(so|dylib)$"), "macho", "a Mach-O file (dlopen: 'not a mach-o file')"),
}


def _platform_family(platform: str) -> str | None:
    if platform.startswith(("manylinux", "musllinux", "linux")):
        return "linux"
    if platform.startswith("win"):
        return "windows"
    if platform.startswith("macosx"):
        return "macos"
    return None


def _check_binary_suffixes(tags: frozenset[Tag], kinds: dict[str, str | None], report: WheelReport) -> None:
    """A member named like a loadable binary of the wheel's platform must be one: a `.so` of random bytes
    fails at import exactly as a broken binary does."""
    families = {_platform_family(t.platform) for t in tags}
    if len(families) != 1 or None in families:
        return  # pure wheels carry other platforms' binaries as data; mixed families promise nothing single
    pattern, expected_kind, description = _BINARY_SUFFIXES[families.pop()]  # type: ignore[index]
    for name, kind in sorted(kinds.items()):
        if kind != expected_kind and pattern.search(name):
            report.add(
                "invalid-binary",
                f"{name} is named like a loadable binary but is not {description}",
                file=name,
            )


def _check_wheel_file(contents: WheelContents, text: str | None, report: WheelReport) -> None:
    if contents.dist_info is None or text is None:
        report.add("wheel-metadata-missing", "no *.dist-info/WHEEL file: not an installable wheel")
        return
    tags: set[Tag] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if key == "tag" and value.count("-") == 2:
            interpreter, abi, platform = value.split("-")
            tags.add(Tag(interpreter, abi, platform))
        elif key == "root-is-purelib":
            contents.root_is_purelib = value.lower() == "true"
    contents.wheel_file_tags = frozenset(tags)
    if tags != set(contents.filename_tags):
        only_name = sorted(str(t) for t in set(contents.filename_tags) - tags)
        only_file = sorted(str(t) for t in tags - set(contents.filename_tags))
        report.add(
            "tag-mismatch",
            f"the file name's tags and {contents.dist_info}/WHEEL disagree: only in the name: "
            f"{', '.join(only_name) or '-'}; only in WHEEL: {', '.join(only_file) or '-'}",
            file=f"{contents.dist_info}/WHEEL",
        )


def _check_record(
    contents: WheelContents, text: str | None, digests: dict[str, tuple[str, int]], report: WheelReport
) -> None:
    if contents.dist_info is None:
        return
    record_name = f"{contents.dist_info}/RECORD"
    if text is None:
        report.add(
            "record-missing",
            f"{record_name} is missing: installers cannot verify or uninstall the wheel",
            file=record_name,
        )
        return
    listed: set[str] = set()
    for row in csv.reader(io.StringIO(text)):
        if not row or not row[0]:
            continue
        name = row[0]
        listed.add(name)
        if posixpath.basename(name) in SIGNATURE_FILES and name.startswith(contents.dist_info + "/"):
            continue
        expected_hash = row[1] if len(row) > 1 else ""
        actual = digests.get(name)
        if actual is None:
            report.add("record-hash-mismatch", f"RECORD lists {name}, which is not in the wheel", file=name)
            continue
        if not expected_hash:
            report.add("record-hash-mismatch", f"RECORD has no hash for {name}", file=name)
        elif expected_hash != actual[0]:
            report.add(
                "record-hash-mismatch",
                f"{name}: RECORD says {expected_hash}, the file hashes to {actual[0]}",
                file=name,
            )
        elif len(row) > 2 and row[2] and row[2] != str(actual[1]):
            report.add(
                "record-hash-mismatch",
                f"{name}: RECORD says {row[2]} bytes, the file has {actual[1]}",
                file=name,
            )
    for name in sorted(set(digests) - listed):
        if posixpath.basename(name) in SIGNATURE_FILES:
            continue
        report.add("record-hash-mismatch", f"{name} is in the wheel but not listed in RECORD", file=name)
