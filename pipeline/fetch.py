"""The fetch layer shared by every stage: pinned downloads into a content-addressed cache.

Files come from a URL (urllib) or from the package index by name + version: the pinned file is looked up in
the index's Simple API file list (PEP 691 JSON or PEP 503 HTML) and downloaded itself with requests (a
well-kept client that honours proxies, REQUESTS_CA_BUNDLE and netrc), from rewheel's index settings
(REWHEEL_INDEX_URL or PIP_INDEX_URL, see upstream_index.py; never a pip.conf). No resolver and no build step
run: an sdist's metadata hook never runs just to fetch it. Nothing unverified is
ever handed to a caller: a download is hashed in a private temporary folder and only moved into the cache,
at <cache>/sha256/<ab>/<digest>/<filename>, when its sha256 matches the pin.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlparse
from urllib.request import url2pathname

import requests
from packaging.utils import canonicalize_name

from pipeline.errors import FetchError, HashMismatch
from pipeline.paths import downloads_cache

CHUNK = 1 << 20
MAX_DOWNLOAD_BYTES = 2 << 30  # no source rewheel handles is near 2 GiB; bigger means something is wrong


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


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(pin: Pin, cache: Path | None = None, *, progress: bool = False) -> Path:
    """Return the cached, verified file for `pin`, downloading it first when needed."""
    if len(pin.sha256) != 64 or any(c not in "0123456789abcdef" for c in pin.sha256):
        raise FetchError(f"{pin.describe()}: pinned sha256 must be 64 lowercase hex characters")
    target = cached_path(pin, cache)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # The temporary folder sits in the cache so the final rename is atomic (same filesystem).
    with tempfile.TemporaryDirectory(prefix=".incoming-", dir=target.parent.parent) as tmp:
        staging = Path(tmp)
        if progress:
            print(f"fetch: {pin.describe()}", file=sys.stderr, flush=True)
        if pin.url:
            downloaded = _download_url(pin, staging)
        elif pin.project and pin.version:
            downloaded = _download_from_index(pin, staging)
        else:
            raise FetchError(f"{pin.filename}: a pin needs a url, or a project and version")
        actual = sha256_of(downloaded)
        if actual != pin.sha256:
            raise HashMismatch(pin.filename if pin.project else pin.describe(), pin.sha256, actual)
        os.replace(downloaded, target)
    return target


def _download_url(pin: Pin, staging: Path) -> Path:
    assert pin.url is not None
    destination = staging / pin.filename
    try:
        with urllib.request.urlopen(pin.url, timeout=60) as response, destination.open("wb") as out:
            total = 0
            while block := response.read(CHUNK):
                total += len(block)
                if total > MAX_DOWNLOAD_BYTES:
                    raise FetchError(f"{pin.url}: larger than {MAX_DOWNLOAD_BYTES} bytes; refusing")
                out.write(block)
    except (urllib.error.URLError, OSError) as exc:
        raise FetchError(f"{pin.url}: download failed: {getattr(exc, 'reason', exc)}") from None
    return destination


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


def _download_from_index(pin: Pin, staging: Path) -> Path:
    """Find the pinned file in the index's file list and download that file itself: no resolver, no metadata
    hook (pip download would prepare an sdist's metadata, which for meson sdists fetches subprojects)."""
    assert pin.project is not None
    destination = staging / pin.filename
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
            url = str(match["url"])
            if url.startswith("file:"):
                shutil.copyfile(url2pathname(urlparse(url).path), destination)
                return destination
            try:
                with session.get(url, stream=True, timeout=60) as response:
                    response.raise_for_status()
                    total = 0
                    with destination.open("wb") as out:
                        for block in response.iter_content(CHUNK):
                            total += len(block)
                            if total > MAX_DOWNLOAD_BYTES:
                                raise FetchError(f"{pin.describe()}: larger than {MAX_DOWNLOAD_BYTES} bytes")
                            out.write(block)
            except requests.RequestException as exc:
                raise FetchError(f"{pin.describe()}: download failed: {exc}") from None
            return destination
    raise FetchError(
        f"{pin.describe()}: the index has no file {pin.filename} for {pin.project} "
        f"(looked in {len(looked_at)} index{'es' if len(looked_at) != 1 else ''} from rewheel's index settings)"
    )


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
