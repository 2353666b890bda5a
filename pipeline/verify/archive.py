"""One pass over a wheel: every member read once, hashed for RECORD, paths checked, binaries parsed.

Nothing is extracted to disk. Binaries (ELF or PE by magic) are parsed from the member bytes and only
their loader-relevant summary is kept, so memory stays bounded by the largest member.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import posixpath
import stat
import struct
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pipeline.errors import RewheelError
from pipeline.verify.elf import ElfInfo, is_elf, parse_elf
from pipeline.verify.pe import PeInfo, is_pe
from pipeline.verify.report import WheelReport
from pipeline.verify.wheelname import Tag, wheel_tags

SIGNATURE_FILES = ("RECORD", "RECORD.jws", "RECORD.p7s")


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


def read_wheel(path: Path, report: WheelReport, *, want_binaries: bool = True) -> WheelContents:
    tags = wheel_tags(path.name)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnusableWheel(f"{path.name}: not a readable zip archive: {exc}") from None
    contents = WheelContents(filename_tags=frozenset(tags), wheel_file_tags=None, root_is_purelib=None)
    digests: dict[str, tuple[str, int]] = {}
    texts: dict[str, str] = {}
    with archive:
        infos = archive.infolist()
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
            if info.is_dir():
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
        work = _member_worker(path.name, reader, wanted_text, wanted_binaries)
        # zlib and hashlib release the GIL on large buffers: a small pool overlaps decompression, hashing
        # and parsing of different members. Results come back in archive order.
        workers = max(1, min(4, os.cpu_count() or 1))
        for name, digest, size, text, elf, pe in _ordered_parallel_map(work, selected, workers):
            if text is not None:
                texts[name] = text
            if name.endswith("/RECORD") and name in wanted_text:
                continue
            digests[name] = (digest, size)
            if elf is not None:
                contents.elf[name] = elf
            if pe is not None:
                contents.pe[name] = pe
        reader.close()
    _check_wheel_file(contents, texts.get(f"{contents.dist_info}/WHEEL"), report)
    _check_record(contents, texts.get(f"{contents.dist_info}/RECORD"), digests, report)
    return contents


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
    """Reads a member's bytes with one positioned read and one zlib call (thread-safe, no shared file
    position): faster than zipfile's streaming reader, whose CRC check RECORD's sha256 makes redundant."""

    def __init__(self, path: Path, archive: zipfile.ZipFile) -> None:
        self.path = path
        self.archive = archive
        self.fd = os.open(path, os.O_RDONLY)
        self.lock = threading.Lock()

    def close(self) -> None:
        os.close(self.fd)

    def read(self, info: zipfile.ZipInfo) -> bytes:
        if info.flag_bits & 0x1:
            raise UnusableWheel(f"{self.path.name}: member {info.filename!r} is encrypted")
        header = os.pread(self.fd, 30, info.header_offset)
        if len(header) != 30 or header[:4] != b"PK\x03\x04":
            raise UnusableWheel(f"{self.path.name}: corrupt local header for {info.filename!r}")
        name_length, extra_length = struct.unpack_from("<HH", header, 26)
        start = info.header_offset + 30 + name_length + extra_length
        raw = os.pread(self.fd, info.compress_size, start)
        if len(raw) != info.compress_size:
            raise UnusableWheel(f"{self.path.name}: member {info.filename!r} is truncated")
        if info.compress_type == zipfile.ZIP_STORED:
            data = raw
        elif info.compress_type == zipfile.ZIP_DEFLATED:
            try:
                data = zlib.decompress(raw, -15, max(info.file_size, 1))
            except zlib.error as exc:
                raise UnusableWheel(f"{self.path.name}: corrupt member {info.filename!r}: {exc}") from None
        else:
            with self.lock:  # other methods (bzip2, lzma) are rare in wheels: let zipfile do them
                try:
                    data = self.archive.read(info)
                except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as exc:
                    raise UnusableWheel(
                        f"{self.path.name}: corrupt member {info.filename!r}: {exc}"
                    ) from None
        if len(data) != info.file_size:
            raise UnusableWheel(
                f"{self.path.name}: member {info.filename!r} has {len(data)} bytes, the archive says {info.file_size}"
            )
        return data


MemberResult = tuple[str, str, int, "str | None", "ElfInfo | None", "PeInfo | None"]


def _member_worker(
    wheel_name: str, reader: _MemberReader, wanted_text: set[str], want_binaries: Callable[[str], bool]
) -> Callable[[zipfile.ZipInfo], MemberResult]:
    def work(info: zipfile.ZipInfo) -> MemberResult:
        name = info.filename
        data = reader.read(info)
        text = data.decode("utf-8", "replace") if name in wanted_text else None
        elf = pe = None
        if len(data) >= 4 and want_binaries(name):
            if is_elf(data):
                elf = parse_elf(data, f"{wheel_name}:{name}")
            elif is_pe(data) and _looks_like_pe_binary(name):
                from pipeline.verify.pe import parse_pe

                pe = parse_pe(data, f"{wheel_name}:{name}")
        return name, _record_digest(data), len(data), text, elf, pe

    return work


def _looks_like_pe_binary(name: str) -> bool:
    # "MZ" is a common 2-byte prefix of text files too; only names the Windows loader would load count.
    return name.lower().endswith((".pyd", ".dll", ".exe"))


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
