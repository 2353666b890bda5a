"""The static index: a folder any static web host can serve as a PEP 503/691 Simple Repository.

Layout of an index root (a channel is simply another root, `<root>/<channel>/`):

    files/<project>/<file>.whl             the wheels, immutable once written
    files/<project>/<file>.whl.metadata    their core metadata (PEP 658/714)
    files/<project>/<file>.whl.proof.json  their proof records (pipeline/proof.py), linked from the JSON page
    index.html, packages/<project>.html    the landing pages for people (landing.py), not for installers
    simple/index.html, simple/index.json   the project list (PEP 503 / PEP 691)
    simple/<project>/index.html, index.json  one page per project
    .rewheel/lock                          publishers serialize on it (fcntl.flock)

Guarantees (see docs/index.md):
- Every file is written aside and renamed into place, so a reader sees a page or a file whole, old or new.
- Files are written before any page names them, and never change or disappear afterwards, so every link
  on every page a reader can get resolves to bytes with the advertised hash.
- Project pages are written before the project list names them: the list is made from the projects
  that have an index.json, and a project's index.json is written after its index.html. The JSON page is
  also the state an update starts from (with rewheel's private `_rewheel` keys), so no wheel is reopened.
- A publisher killed at any point leaves an index that satisfies the above; the next publish or
  `rewheel index rebuild` picks up files that were copied in but not yet listed.
Not guaranteed: the HTML and JSON page of a project, or the project list and a project page, changing
at the same instant (they are separate files; each is consistent on its own).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from pipeline.index import pages
from pipeline.index.wheelinfo import FileEntry, PublishError, project_of, read_wheel, wheel_identity
from pipeline.log import log
from pipeline.util import sha256_file

RESERVED_DIR = ".rewheel"
TEMP_PREFIX = ".tmp-"
LOCK_TIMEOUT_SECONDS = 600.0
FSYNC_EACH_UP_TO = 16
CHANNEL_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
RESERVED_CHANNELS = {pages.FILES_DIR, pages.SIMPLE_DIR, "packages"}  # packages/: landing.py's pages


def utc_timestamp(seconds: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if seconds is None else seconds, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def channel_root(root: Path, channel: str | None) -> Path:
    if channel is None:
        return root
    if not CHANNEL_NAME.match(channel) or channel in RESERVED_CHANNELS:
        raise PublishError(
            f"channel {channel!r} is not usable: lowercase letters, digits, '.', '_', '-' only, "
            f"and not {' or '.join(sorted(RESERVED_CHANNELS))}"
        )
    return root / channel


def _temporary_beside(path: Path) -> Path:
    return path.with_name(f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{path.name}")


class AtomicBatch:
    """Files written aside in their own folder, then renamed into place together.

    A rename is atomic, so readers see each file's old bytes or its new, never a part. For durability the
    data must reach the disk before the rename (or a power cut could leave a renamed, empty file): one
    sync() for the whole batch instead of an fsync per file, which made a 10,000-wheel publish 20x slower.
    Batches are committed in order (files, then HTML pages, then JSON pages), which keeps links valid."""

    def __init__(self, durable: bool) -> None:
        self.durable = durable
        self.pending: list[tuple[Path, Path]] = []

    def write(self, path: Path, data: bytes, *, only_if_changed: bool = False) -> None:
        if only_if_changed and path.is_file() and path.read_bytes() == data:
            return  # unchanged pages keep their mtime, so mirrors and CDNs see no change
        temporary = _temporary_beside(path)
        temporary.write_bytes(data)
        self.pending.append((temporary, path))

    def copy(self, source: Path, path: Path, sha256: str) -> None:
        """Copy a file in, checking the copy's hash (the source may have changed since it was read)."""
        temporary = _temporary_beside(path)
        digest = hashlib.sha256()
        with source.open("rb") as reader, temporary.open("wb") as writer:
            for block in iter(lambda: reader.read(1 << 20), b""):
                digest.update(block)
                writer.write(block)
        if digest.hexdigest() != sha256:
            temporary.unlink()
            raise PublishError(
                f"{source}: changed while being published (sha256 differs from when it was read)"
            )
        self.pending.append((temporary, path))

    def commit(self, on_rename: Callable[[Path], None] | None = None) -> None:
        if self.durable and self.pending:
            if len(self.pending) <= FSYNC_EACH_UP_TO:
                for (
                    temporary,
                    _,
                ) in self.pending:  # a few files: fsync each (a sync() waits for everyone's I/O)
                    with temporary.open("rb+") as handle:
                        os.fsync(handle.fileno())
            else:
                os.sync()
        for temporary, path in self.pending:
            os.replace(temporary, path)
            if on_rename:
                on_rename(path)
        self.pending.clear()


def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    batch = AtomicBatch(durable)
    batch.write(path, data)
    batch.commit()


def _remove_temporaries(folder: Path) -> None:
    """Leftovers of a killed publisher (only called with the lock held, so no writer is mid-way)."""
    if folder.is_dir():
        for leftover in folder.glob(f"{TEMP_PREFIX}*"):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def _wheels_in(folder: Path) -> list[Path]:
    """The wheels of a files/<project>/ folder (pathlib's glob also matches our hidden temporaries)."""
    try:
        with os.scandir(folder) as listing:
            names = [e.name for e in listing if e.name.endswith(".whl") and not e.name.startswith(".")]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [folder / name for name in sorted(names)]


@dataclass
class Staged:
    """A wheel read and checked, ready to enter the index (its bytes are copied in from `path`)."""

    path: Path
    entry: FileEntry
    metadata: bytes
    proof: bytes | None = None  # its proof record (pipeline/proof.py), written beside it on publish


@dataclass
class AddOutcome:
    filename: str
    project: str
    status: str  # "added" | "unchanged"
    sha256: str
    url: str  # relative to the index root

    def to_json(self) -> dict[str, object]:
        return {
            "filename": self.filename,
            "project": self.project,
            "status": self.status,
            "sha256": self.sha256,
            "path": self.url,
        }


def stage(path: Path, verification: str | None = None, proof: bytes | None = None) -> Staged:
    if not path.is_file():
        raise PublishError(f"{path}: no such file")
    entry, metadata = read_wheel(path)
    entry.verification = verification
    return Staged(path, entry, metadata, proof)


def _proof_sha256(wheel_path: Path) -> str | None:
    proof = wheel_path.with_name(wheel_path.name + pages.PROOF_SUFFIX)
    return sha256_file(proof) if proof.is_file() else None


class StaticIndex:
    def __init__(self, root: Path, *, durable: bool = True) -> None:
        self.root = root
        self.durable = durable

    # ---- locations
    @property
    def files_dir(self) -> Path:
        return self.root / pages.FILES_DIR

    @property
    def simple_dir(self) -> Path:
        return self.root / pages.SIMPLE_DIR

    def project_files(self, project: str) -> Path:
        return self.files_dir / project

    # ---- the lock
    @contextlib.contextmanager
    def locked(self, timeout: float = LOCK_TIMEOUT_SECONDS) -> Iterator[None]:
        """Serialize publishers. flock is released by the kernel when its holder dies, so a killed
        publisher never leaves a stale lock behind."""
        lock_path = self.root / RESERVED_DIR / "lock"
        try:
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            handle = lock_path.open("a")
        except OSError as exc:  # a file in the way, /proc, a read-only place
            raise PublishError(f"{self.root}: cannot be used as an index: {exc.strerror or exc}") from None
        with handle:
            deadline = time.monotonic() + timeout
            announced = False
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not announced:
                        log.say(f"index: waiting for another publisher to finish ({self.root})")
                        announced = True
                    if time.monotonic() > deadline:
                        raise PublishError(
                            f"{self.root}: another publisher held the index lock for over {timeout:.0f} s"
                        ) from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    # ---- state: the project's JSON page
    def _page_path(self, project: str) -> Path:
        return self.simple_dir / project / "index.json"

    def _read_state(self, project: str) -> dict[str, FileEntry]:
        path = self._page_path(project)
        if not path.is_file():
            return {}
        try:
            return pages.entries_from_json(project, path.read_bytes())
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise PublishError(
                f"{path}: not a page rewheel wrote ({type(exc).__name__}: {exc}); "
                "`rewheel index rebuild` rewrites it from the files"
            ) from None

    def projects(self) -> list[str]:
        try:
            with os.scandir(self.simple_dir) as listing:
                folders = [e.name for e in listing if e.is_dir() and not e.name.startswith(".")]
        except FileNotFoundError:
            return []
        return sorted(f for f in folders if (self.simple_dir / f / "index.json").is_file())

    def load_project(self, project: str) -> dict[str, FileEntry]:
        """The project's entries, reconciled with the files actually present: a wheel copied in by a
        publisher that died before writing the pages is read now (the only time a wheel is reopened)."""
        entries = self._read_state(project)
        folder = self.project_files(project)
        _remove_temporaries(folder)
        present = {p.name for p in _wheels_in(folder)}
        for name in list(entries):
            if name not in present:
                del entries[name]
        for name in sorted(present - set(entries)):
            log.say(f"index: picking up {name}, copied in by an interrupted publish")
            path = folder / name
            entry, metadata = read_wheel(path)
            entry.upload_time = utc_timestamp(path.stat().st_mtime)
            write_atomic(path.with_name(name + ".metadata"), metadata, durable=self.durable)
            entry.proof_sha256 = _proof_sha256(path)
            entries[name] = entry
        return entries

    def _ensure_metadata(self, wheel_path: Path, metadata: bytes, batch: AtomicBatch) -> None:
        batch.write(wheel_path.with_name(wheel_path.name + ".metadata"), metadata, only_if_changed=True)

    # ---- pages
    def _write_root_pages(self) -> None:
        self.simple_dir.mkdir(parents=True, exist_ok=True)
        _remove_temporaries(self.simple_dir)
        projects = self.projects()
        batch = AtomicBatch(self.durable)
        batch.write(self.simple_dir / "index.json", pages.root_json(projects), only_if_changed=True)
        batch.write(self.simple_dir / "index.html", pages.root_html(projects), only_if_changed=True)
        batch.commit()

    def _commit_projects(self, projects: dict[str, dict[str, FileEntry]]) -> None:
        # HTML first, JSON last: the project list is made from the projects that have an index.json, so
        # it never names a project whose pages are not both there.
        html_batch, json_batch = AtomicBatch(self.durable), AtomicBatch(self.durable)
        for project, entries in projects.items():
            folder = self.simple_dir / project
            folder.mkdir(parents=True, exist_ok=True)
            _remove_temporaries(folder)
            html = pages.project_html(project, entries.values())
            html_batch.write(folder / "index.html", html, only_if_changed=True)
            document = pages.project_json(project, entries.values())
            json_batch.write(folder / "index.json", document, only_if_changed=True)
        html_batch.commit()
        json_batch.commit()

    def _write_landing(self, changed: Iterable[str] | None) -> None:
        from pipeline.index.landing import write_landing

        write_landing(self.root, changed, reserved=RESERVED_DIR, durable=self.durable)

    def refresh_landing(self, changed: Iterable[str] | None = None) -> None:
        """Rewrite the landing pages alone (after a channel of this root changed)."""
        with self.locked():
            self._write_landing(changed)

    # ---- operations (each takes the lock itself)
    def add(self, staged: list[Staged]) -> list[AddOutcome]:
        """Add wheels: all or nothing for conflicts (checked before anything is written).

        A conflict is judged by what a file name means to pip (wheel_identity: normalised project name,
        PEP 440 version, build tag, tags), not by its spelling: after `demo-1.0-py3-none-any.whl`, neither
        `demo-1.0.0-py3-none-any.whl` nor `DEMO-1.0-py3-none-any.whl` may enter."""
        by_name: dict[str, Staged] = {}
        by_identity: dict[object, str] = {}
        for item in staged:
            name = item.entry.filename
            earlier = by_name.get(name)
            if earlier and earlier.entry.sha256 != item.entry.sha256:
                raise PublishError(f"{name}: given twice with different content")
            other = by_identity.setdefault(wheel_identity(name), name)
            if other != name:
                raise PublishError(f"{name}: given together with {other}, which pip takes for the same file")
            by_name[name] = item
        with self.locked():
            # The project list exists from the first publish on, so a publisher killed before its end
            # leaves an index that `index check` accepts (the list names only complete projects).
            if (
                not (self.simple_dir / "index.html").is_file()
                or not (self.simple_dir / "index.json").is_file()
            ):
                self._write_root_pages()
            current: dict[str, dict[str, FileEntry]] = {}
            identities: dict[str, dict[object, str]] = {}  # per project: what each listed name means to pip
            outcomes = []
            for name, item in sorted(by_name.items()):
                project = item.entry.project
                if project not in current:
                    current[project] = self.load_project(project)
                existing = current[project].get(name)
                if existing is not None and existing.sha256 != item.entry.sha256:
                    raise PublishError(
                        f"{name}: already published with sha256 {existing.sha256}, this file has "
                        f"{item.entry.sha256}; published files are immutable (bump the version or build tag)"
                    )
                if project not in identities:
                    identities[project] = {wheel_identity(other): other for other in current[project]}
                other = identities[project].get(wheel_identity(name), name)
                if other != name:
                    raise PublishError(
                        f"{name}: the index already has {other}, the same project, version and tags "
                        "to pip; published files are immutable (bump the version or build tag)"
                    )
                status = "unchanged" if existing is not None else "added"
                url = f"{pages.FILES_DIR}/{project}/{name}"
                outcomes.append(AddOutcome(name, project, status, item.entry.sha256, url))
            # Metadata files before wheels: a wheel present on disk is taken to have its metadata.
            metadata_batch, wheel_batch = AtomicBatch(self.durable), AtomicBatch(self.durable)
            cleaned: set[str] = set()
            for outcome in outcomes:
                item = by_name[outcome.filename]
                if outcome.status != "added":
                    # A file published before proof records existed gets one now; a recorded proof stays.
                    listed = current[outcome.project][outcome.filename]
                    if item.proof is not None and listed.proof_sha256 is None:
                        wheel_path = self.project_files(outcome.project) / outcome.filename
                        metadata_batch.write(
                            wheel_path.with_name(wheel_path.name + pages.PROOF_SUFFIX), item.proof
                        )
                        listed.proof_sha256 = hashlib.sha256(item.proof).hexdigest()
                    continue
                folder = self.project_files(outcome.project)
                if outcome.project not in cleaned:
                    folder.mkdir(parents=True, exist_ok=True)
                    _remove_temporaries(folder)
                    cleaned.add(outcome.project)
                destination = folder / outcome.filename
                self._ensure_metadata(destination, item.metadata, metadata_batch)
                if item.proof is not None:  # like the metadata: on disk before the wheel that it describes
                    metadata_batch.write(
                        destination.with_name(destination.name + pages.PROOF_SUFFIX), item.proof
                    )
                    item.entry.proof_sha256 = hashlib.sha256(item.proof).hexdigest()
                wheel_batch.copy(item.path, destination, item.entry.sha256)
                item.entry.upload_time = utc_timestamp()
                current[outcome.project][outcome.filename] = item.entry
            metadata_batch.commit()
            wheel_batch.commit(lambda path: log.say(f"index: added {path.relative_to(self.root)}"))
            self._commit_projects(current)
            self._write_root_pages()
            self._write_landing(current)
        return outcomes

    def yank(self, filename: str, reason: str | None, *, undo: bool = False) -> FileEntry:
        project = project_of(filename)
        with self.locked():
            entries = self.load_project(project)
            if filename not in entries:
                raise PublishError(f"{filename}: not in the index at {self.root}")
            entry = entries[filename]
            entry.yanked = None if undo else (reason or "")
            self._commit_projects({project: entries})
            self._write_root_pages()
            self._write_landing([project])
        return entry

    def rebuild(self) -> dict[str, int]:
        """Re-index from the files alone: every wheel is reread, metadata files and pages rewritten.
        Upload times, yanks and verification notes survive from the old pages when the bytes match."""
        with self.locked():
            grouped: dict[str, dict[str, FileEntry]] = {}
            metadata_batch = AtomicBatch(self.durable)
            wheels = 0
            folders = (
                sorted(p for p in self.files_dir.iterdir() if p.is_dir()) if self.files_dir.is_dir() else []
            )
            paths: list[Path] = []
            for folder in folders:
                _remove_temporaries(folder)
                paths += _wheels_in(folder)
            olds: dict[str, dict[str, FileEntry]] = {}
            for path in paths:
                entry, metadata = read_wheel(path)
                project = path.parent.name
                if entry.project != project:
                    raise PublishError(f"{path}: belongs to project {entry.project}, not {project}")
                if project not in olds:
                    try:
                        olds[project] = self._read_state(project)
                    except PublishError:  # a damaged page: the files alone decide
                        olds[project] = {}
                previous = olds[project].get(path.name)
                if previous is not None and previous.sha256 == entry.sha256:
                    entry.upload_time = previous.upload_time
                    entry.yanked = previous.yanked
                    entry.verification = previous.verification
                else:
                    entry.upload_time = utc_timestamp(path.stat().st_mtime)
                entry.proof_sha256 = _proof_sha256(path)
                self._ensure_metadata(path, metadata, metadata_batch)
                grouped.setdefault(project, {})[path.name] = entry
                wheels += 1
            metadata_batch.commit()
            for project in self.projects():
                if project not in grouped:  # its files are gone: drop it from the list, then its pages
                    self._page_path(project).unlink()
                    with contextlib.suppress(FileNotFoundError):
                        shutil.rmtree(self.simple_dir / project)
            self._commit_projects(grouped)
            self._write_root_pages()
            self._write_landing(None)
            log.say(f"index: rebuilt {len(grouped)} projects, {wheels} files at {self.root}")
        return {"projects": len(grouped), "files": wheels}


# ---- consistency check (used by `rewheel index check` and the tests)


class AnchorParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[dict[str, str | None]] = []
        self.repository_version: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "a":
            self.anchors.append(attributes)
        elif tag == "meta" and attributes.get("name") == "pypi:repository-version":
            self.repository_version = attributes.get("content")


def _resolve(root: Path, page_folder: str, href: str) -> Path | None:
    """A link on a page (served at /<page_folder>/) as a path inside the index root, or None if it leaves it."""
    target = urlsplit(urljoin(f"http://index/{page_folder}/", href)).path
    candidate = (root / unquote(target).lstrip("/")).resolve()
    return candidate if candidate.is_relative_to(root.resolve()) else None


def _read_page(path: Path) -> str:
    """A page's text; a page that is not UTF-8 (or not readable) cannot be checked: one line, exit 2."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PublishError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise PublishError(f"{path}: cannot read: {exc.strerror or exc}") from None


def check_index(root: Path, warnings: list[str] | None = None) -> list[str]:
    """Every problem a reader of this index could meet; empty when the index is consistent. Files without a
    proof record (published before rewheel wrote them) are not problems: they go to `warnings`."""
    problems: list[str] = []
    warnings = [] if warnings is None else warnings
    simple = root / pages.SIMPLE_DIR
    if not (simple / "index.html").is_file() or not (simple / "index.json").is_file():
        has_pages = simple.is_dir() and any((folder / "index.json").is_file() for folder in simple.iterdir())
        if (root / RESERVED_DIR).is_dir() and not has_pages:
            return []  # a first publish that never got to write a page: an empty index, nothing to misread
        return [f"{simple}: no project list (index.html and index.json)"]
    html_parser = AnchorParser()
    html_parser.feed(_read_page(simple / "index.html"))
    html_projects = {(a.get("href") or "").rstrip("/") for a in html_parser.anchors}
    try:
        json_projects = {p["name"] for p in json.loads(_read_page(simple / "index.json"))["projects"]}
    except (ValueError, KeyError, TypeError) as exc:
        return [f"{simple / 'index.json'}: not a PEP 691 project list: {exc}"]
    for project in sorted(html_projects | json_projects):
        folder = simple / project
        if not (folder / "index.html").is_file() or not (folder / "index.json").is_file():
            problems.append(f"{project}: listed but its page is missing")
            continue
        problems += _check_project(root, project, warnings)
    return problems


def _check_link(root: Path, project: str, href: str, sha256: str | None, metadata: str | None) -> list[str]:
    problems = []
    path = _resolve(root, f"{pages.SIMPLE_DIR}/{project}", href.split("#", 1)[0])
    if path is None or not path.is_file():
        return [f"{project}: {href} does not exist"]
    if sha256 is None or sha256_file(path) != sha256:
        problems.append(f"{project}: {href} does not have the advertised sha256")
    metadata_path = path.with_name(path.name + ".metadata")
    if metadata is None or not metadata_path.is_file() or sha256_file(metadata_path) != metadata:
        problems.append(f"{project}: {href}.metadata is missing or does not match its hash")
    return problems


def _check_proof(root: Path, project: str, item: dict[str, object], warnings: list[str]) -> list[str]:
    """The proof record a JSON page links to exists, has the advertised hash and describes this very file."""
    filename = str(item["filename"])
    link = item.get(pages.PROOF_KEY)
    if not isinstance(link, dict):
        warnings.append(f"{project}: {filename}: no proof record")
        return []
    href = str(link.get("url") or "")
    path = _resolve(root, f"{pages.SIMPLE_DIR}/{project}", href)
    if path is None or not path.is_file():
        return [f"{project}: {href} (proof record) does not exist"]
    if sha256_file(path) != link.get("sha256"):
        return [f"{project}: {href} does not have the advertised sha256"]
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        recorded = document["file"]
        hashes = item["hashes"]
        if not isinstance(hashes, dict):
            raise TypeError("the page's hashes are not an object")
        if recorded["sha256"] != hashes.get("sha256") or recorded["filename"] != filename:
            return [
                f"{project}: {href} is the proof of {recorded['filename']} sha256 {recorded['sha256']}, not of this file"
            ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [f"{project}: {href} is not a proof record: {exc}"]
    return []


def _check_project(root: Path, project: str, warnings: list[str]) -> list[str]:
    folder = root / pages.SIMPLE_DIR / project
    problems: list[str] = []
    parser = AnchorParser()
    parser.feed(_read_page(folder / "index.html"))
    if parser.repository_version is None:
        problems.append(f"{project}: index.html has no pypi:repository-version")
    for anchor in parser.anchors:
        href = anchor.get("href") or ""
        _, _, fragment = href.partition("#")
        sha256 = fragment[len("sha256=") :] if fragment.startswith("sha256=") else None
        core = anchor.get("data-core-metadata") or ""
        metadata = core[len("sha256=") :] if core.startswith("sha256=") else None
        problems += _check_link(root, project, href, sha256, metadata)
    try:
        document = json.loads(_read_page(folder / "index.json"))
        seen: dict[object, str] = {}
        for item in document["files"]:
            try:
                other = seen.setdefault(wheel_identity(item["filename"]), item["filename"])
            except PublishError as exc:
                problems.append(f"{project}: {exc}")
            else:
                if other != item["filename"]:
                    problems.append(f"{project}: {other} and {item['filename']} are the same file to pip")
            problems += _check_link(
                root, project, item["url"], item["hashes"].get("sha256"), item["core-metadata"].get("sha256")
            )
            problems += _check_proof(root, project, item, warnings)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        problems.append(f"{project}: index.json is not a PEP 691 project page: {exc}")
    return problems


def find_index_root(start: Path) -> Path | None:
    """The index root holding `start` (a file or folder inside it)."""
    for candidate in (start, *start.parents):
        if (candidate / RESERVED_DIR).is_dir() and (candidate / pages.SIMPLE_DIR).is_dir():
            return candidate
    return None


def iter_wheels(arguments: Iterable[Path]) -> list[Path]:
    """Wheel paths from arguments that may be wheels or folders of wheels (a wheelhouse)."""
    found: list[Path] = []
    for argument in arguments:
        if argument.is_dir():
            found += sorted(argument.glob("*.whl"))
        elif argument.is_file():
            found.append(argument)
        else:
            raise PublishError(f"{argument}: no such file or folder")
    return found
