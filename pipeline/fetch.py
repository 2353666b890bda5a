"""The fetch layer shared by every stage: pinned downloads into a content-addressed cache.

Files come from a URL (urllib) or from the package index by name + version: the pinned file is looked up in
the index's Simple API file list (PEP 691 JSON or PEP 503 HTML) and downloaded itself with requests (a
well-kept client that honours proxies, REQUESTS_CA_BUNDLE and netrc), from rewheel's index settings
(REWHEEL_INDEX_URL or PIP_INDEX_URL, see upstream_index.py; never a pip.conf). No resolver and no build step
run: an sdist's metadata hook never runs just to fetch it. Nothing unverified is
ever handed to a caller: a download is hashed as it is written to a temporary file next to its place in the
cache, renamed to <cache>/sha256/<ab>/<digest>/<filename> only when its sha256 matches the pin, and
deleted on any failure. Downloads are bounded in size (REWHEEL_MAX_DOWNLOAD_BYTES, 2 GiB by default, and
the size the index states), and only http(s) links of an index page are followed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urljoin, urlparse
from urllib.request import url2pathname

import requests
from packaging.utils import canonicalize_name

from pipeline.errors import FetchError, HashMismatch
from pipeline.log import log
from pipeline.paths import downloads_cache

CHUNK = 1 << 20
# no source rewheel handles is near 2 GiB; bigger means something is wrong (REWHEEL_MAX_DOWNLOAD_BYTES
# sets another bound)
MAX_DOWNLOAD_BYTES = 2 << 30


@dataclass(frozen=True)
class Pin:
    """What to fetch: a file name and its sha256, plus where to get it."""

    filename: str
    sha256: str
    url: str | None = None
    project: str | None = None  # name on the package index
    version: str | None = None

    def describe(self) -> str:
        return self.url or f"{self.project}=={self.version} ({self.filename})"


def cached_path(pin: Pin, cache: Path | None = None) -> Path:
    root = cache or downloads_cache()
    return root / pin.sha256[:2] / pin.sha256 / pin.filename


def max_download_bytes() -> int:
    """The largest download accepted: REWHEEL_MAX_DOWNLOAD_BYTES, else MAX_DOWNLOAD_BYTES."""
    configured = os.environ.get("REWHEEL_MAX_DOWNLOAD_BYTES", "")
    try:
        return int(configured) if configured else MAX_DOWNLOAD_BYTES
    except ValueError:
        raise FetchError(f"REWHEEL_MAX_DOWNLOAD_BYTES={configured!r}: not a number of bytes") from None


class _Sink:
    """Where a download's bytes go: a temporary file next to its final place in the cache, hashed and
    counted as written. At most `limit` bytes are taken (fewer when the index states the size), so a link
    to an endless stream stops at once instead of filling the disk."""

    def __init__(self, handle: BinaryIO, what: str, limit: int, expected_size: int | None) -> None:
        self.handle = handle
        self.what = what
        self.limit = min(limit, expected_size) if expected_size is not None else limit
        self.expected_size = expected_size
        self.size = 0
        self.digest = hashlib.sha256()

    def write(self, block: bytes) -> None:
        self.size += len(block)
        if self.size > self.limit:
            if self.expected_size is not None and self.limit == self.expected_size:
                raise FetchError(f"{self.what}: larger than the {self.expected_size} bytes the index states")
            raise FetchError(
                f"{self.what}: larger than {self.limit} bytes; refusing (REWHEEL_MAX_DOWNLOAD_BYTES raises it)"
            )
        self.digest.update(block)
        self.handle.write(block)


def fetch(pin: Pin, cache: Path | None = None) -> Path:
    """Return the cached, verified file for `pin`, downloading it first when needed."""
    if len(pin.sha256) != 64 or any(c not in "0123456789abcdef" for c in pin.sha256):
        raise FetchError(f"{pin.describe()}: pinned sha256 must be 64 lowercase hex characters")
    target = cached_path(pin, cache)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    log.say(f"fetch: {pin.describe()}")
    # The bytes go to a hidden temporary file in the same folder, renamed (atomic on one filesystem) only
    # when the sha256 matches; on any failure, an interrupt included, it is deleted, so nothing partial or
    # unverified is ever at a cache path.
    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{pin.sha256[:12]}.", suffix=".partial", dir=target.parent
    )
    try:
        with os.fdopen(descriptor, "wb") as handle:
            if pin.url:
                sink = _download_url(pin, handle)
            elif pin.project and pin.version:
                sink = _download_from_index(pin, handle)
            else:
                raise FetchError(f"{pin.filename}: a pin needs a url, or a project and version")
        actual = sink.digest.hexdigest()
        if actual != pin.sha256:
            raise HashMismatch(pin.filename if pin.project else pin.describe(), pin.sha256, actual)
        if sink.expected_size is not None and sink.size != sink.expected_size:
            raise FetchError(f"{pin.describe()}: {sink.size} bytes, the index states {sink.expected_size}")
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return target


def _download_url(pin: Pin, handle: BinaryIO) -> _Sink:
    assert pin.url is not None
    scheme = urlparse(pin.url).scheme
    sink = _Sink(handle, pin.url, max_download_bytes(), None)
    if scheme == "file":
        # a file of a local index folder (a file:// index URL resolved by gaps): regular files only, so a
        # link to a device (file:///dev/zero) is refused instead of filling the cache
        _copy_local(pin.url, sink, pin)
        return sink
    if scheme not in ("http", "https"):
        raise FetchError(f"{pin.url}: only http(s) and local file URLs are fetched")
    try:
        with urllib.request.urlopen(pin.url, timeout=60) as response:
            while block := response.read(CHUNK):
                sink.write(block)
    except (urllib.error.URLError, OSError) as exc:
        raise FetchError(f"{pin.url}: download failed: {getattr(exc, 'reason', exc)}") from None
    return sink


def index_urls() -> list[str]:
    """The Simple API roots to look in: rewheel's own index settings (pipeline.upstream_index), the same ones
    gaps hands the resolver, never a pip.conf."""
    from pipeline.upstream_index import index_settings

    return index_settings().urls


def _pip_configuration() -> dict[str, str]:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
    )
    values = {}
    for line in result.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip("'\"")
    return values


class _Anchors(HTMLParser):
    """File links of a PEP 503 HTML project page (when the index does not answer PEP 691 JSON)."""

    def __init__(self) -> None:
        super().__init__()
        self.files: list[dict[str, object]] = []
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href")
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            url, _, fragment = self._href.partition("#")
            hashes = dict([fragment.split("=", 1)]) if "=" in fragment else {}
            self.files.append({"filename": "".join(self._text).strip(), "url": url, "hashes": hashes})
            self._href = None


def _project_files(session: requests.Session, index: str, project: str) -> list[dict[str, object]]:
    """The index's file list for `project` (PEP 691 JSON, or PEP 503 HTML), file URLs made absolute."""
    page = urljoin(index.rstrip("/") + "/", canonicalize_name(project) + "/")
    if page.startswith("file:"):
        # A local index folder (pip accepts file:// index URLs): its project page is <folder>/index.html.
        html = Path(url2pathname(urlparse(page).path)) / "index.html"
        if not html.is_file():
            return []
        parser = _Anchors()
        parser.feed(html.read_text(encoding="utf-8", errors="replace"))
        for file in parser.files:
            file["url"] = urljoin(html.as_uri(), str(file["url"]))
        return parser.files
    accept = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"
    response = session.get(page, headers={"Accept": accept}, timeout=60)
    if response.status_code == 404:
        return []
    response.raise_for_status()
    if "json" in response.headers.get("Content-Type", ""):
        files = list(response.json().get("files", []))
    else:
        parser = _Anchors()
        parser.feed(response.text)
        files = list(parser.files)
    for file in files:
        file["url"] = urljoin(response.url, str(file["url"]))
    return files


def _download_from_index(pin: Pin, handle: BinaryIO) -> _Sink:
    """Find the pinned file in the index's file list and download that file itself: no resolver, no metadata
    hook (pip download would prepare an sdist's metadata, which for meson sdists fetches subprojects)."""
    assert pin.project is not None
    with requests.Session() as session:
        session.headers["User-Agent"] = "rewheel-fetch"
        cert = os.environ.get("PIP_CERT") or _pip_configuration().get("global.cert")
        if cert:
            session.verify = cert  # pip's own CA bundle setting applies to its index
        looked_at = []
        for index in index_urls():
            try:
                files = _project_files(session, index, pin.project)
            except (requests.RequestException, ValueError) as exc:
                raise FetchError(f"{pin.describe()}: reading the index's file list failed: {exc}") from None
            looked_at.append(index)
            match = next((f for f in files if f.get("filename") == pin.filename), None)
            if match is None:
                continue
            listed = dict(match.get("hashes") or {}).get("sha256")  # type: ignore[call-overload]
            if listed and listed != pin.sha256:
                # Fail before downloading: the index itself says the file is not the pinned one.
                raise HashMismatch(f"{pin.filename} ({pin.project} {pin.version})", pin.sha256, str(listed))
            stated = match.get("size")  # PEP 700
            expected_size = stated if isinstance(stated, int) and not isinstance(stated, bool) else None
            sink = _Sink(handle, pin.describe(), max_download_bytes(), expected_size)
            url = str(match["url"])
            scheme = urlparse(url).scheme
            if scheme == "file" and urlparse(index).scheme == "file":
                _copy_local(url, sink, pin)  # a local index folder (file:// index URL) links to its files
                return sink
            if scheme not in ("http", "https"):
                # An index page on a server names files on servers: a file: link from it would read this
                # machine's files (file:///dev/zero filled the cache), any other scheme is not a download.
                raise FetchError(
                    f"{pin.describe()}: the index links the file as {url!r}; only http(s) is followed"
                )
            try:
                with session.get(url, stream=True, timeout=60) as response:
                    response.raise_for_status()
                    for block in response.iter_content(CHUNK):
                        sink.write(block)
            except requests.RequestException as exc:
                raise FetchError(f"{pin.describe()}: download failed: {exc}") from None
            return sink
    raise FetchError(
        f"{pin.describe()}: the index has no file {pin.filename} for {pin.project} "
        f"(looked in {len(looked_at)} index{'es' if len(looked_at) != 1 else ''} from rewheel's index settings)"
    )


def _copy_local(url: str, sink: _Sink, pin: Pin) -> None:
    """A file of a local index folder: a regular file, read through the same bounds as a download."""
    path = Path(url2pathname(urlparse(url).path))
    try:
        with path.open("rb") as source:
            if not stat.S_ISREG(os.fstat(source.fileno()).st_mode):
                raise FetchError(f"{pin.describe()}: {path} is not a regular file")
            while block := source.read(CHUNK):
                sink.write(block)
    except OSError as exc:
        raise FetchError(f"{pin.describe()}: cannot read {path}: {exc.strerror or exc}") from None


def pin_for_source(source: object, default_project: str) -> Pin:
    """A Pin from a recipe's [[source]] (or [[native]]) entry."""
    return Pin(
        filename=source.filename,  # type: ignore[attr-defined]
        sha256=source.sha256,  # type: ignore[attr-defined]
        url=source.url,  # type: ignore[attr-defined]
        project=getattr(source, "project", None) or default_project,
        version=source.version,  # type: ignore[attr-defined]
    )


def copy_verified(path: Path, destination: Path) -> Path:
    """Copy a cached file out (stages never modify the cache in place)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, destination)
    return destination
