"""Upload wheels to an index server (pypiserver, devpi, Artifactory, Nexus, GitLab) with twine.

Credentials come from the environment (REWHEEL_INDEX_USERNAME / REWHEEL_INDEX_PASSWORD, else twine's own
TWINE_USERNAME / TWINE_PASSWORD) or from keyring through twine; they are handed to twine in its
environment, never on a command line (other users can read those), and scrubbed from every message.

Immutability on a server: before uploading, the server's simple page for the project is read; the same
file name with the same sha256 is a no-op, with another sha256 it is refused, and so is any other file
name pip takes for the same file (same normalised project, version, build tag and tags). A page that is
not a Simple API page is refused too. Transient failures (HTTP 5xx, connection resets, timeouts) are
retried with exponential backoff.

The page is read with requests (already installed as twine's own HTTP client), following redirects only
within the origin the credentials were given for: a redirect to any other scheme, host or port (such as
pypiserver's fallback to a public index) is not followed, so the credentials never leave that origin.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import requests

from pipeline.index.static import AnchorParser
from pipeline.index.wheelinfo import PublishError, project_of, wheel_identity
from pipeline.log import log
from pipeline.util import error_line, sha256_file

PAGE_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"
)
MAX_REDIRECTS = 5
# A project page is a list of file names and hashes: tens of KiB for a project with thousands of files. A
# bigger one, or one that takes longer in all (however steadily its bytes trickle in), is not read on.
MAX_PAGE_BYTES = 64 << 20
PAGE_SECONDS = 30.0
# after an upload, how often the page is read again before the file counts as unconfirmed (an index may
# list a new file a moment after it stored it)
CONFIRM_READS = 3
PAGE_ATTEMPTS = 3  # reads of a page answered with a 5xx
DEFAULT_PORTS = {"http": 80, "https": 443}

TRANSIENT = re.compile(
    r"HTTPError: 5\d\d|\b50[0234]\b.*(Server Error|Unavailable|Gateway)|ConnectionError|Connection reset|"
    r"Connection aborted|RemoteDisconnected|Max retries exceeded|timed out|BadStatusLine",
    re.IGNORECASE,
)
ALREADY_EXISTS = re.compile(r"HTTPError: 409|already exist|File already exists", re.IGNORECASE)


def _unquoted(text: str | None) -> str | None:
    return unquote(text) if text else None


@dataclass
class Credentials:
    username: str | None
    password: str | None

    @classmethod
    def from_environment(cls, url: str = "") -> Credentials:
        """The environment's credentials, else a user:password written into the URL."""
        env = os.environ
        parts = urlsplit(url)
        return cls(
            env.get("REWHEEL_INDEX_USERNAME") or env.get("TWINE_USERNAME") or _unquoted(parts.username),
            env.get("REWHEEL_INDEX_PASSWORD") or env.get("TWINE_PASSWORD") or _unquoted(parts.password),
        )

    def scrub(self, text: str) -> str:
        """Remove secrets from text that is about to be shown (twine's output, exception messages)."""
        if self.password:
            text = text.replace(self.password, "****")
        return re.sub(r"(://)[^/@\s]+@", r"\1****@", text)

    def auth(self) -> tuple[str, str] | None:
        if self.username is None or self.password is None:
            return None
        return (self.username, self.password)


@dataclass
class UploadOutcome:
    filename: str
    status: str  # "uploaded" | "unchanged" | "unconfirmed" (uploaded, but the page does not list its sha256)
    attempts: int

    def to_json(self) -> dict[str, object]:
        return {"filename": self.filename, "status": self.status, "attempts": self.attempts}


def public_url(url: str) -> str:
    """The URL without any user:password part, for messages."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def _origin(url: str) -> tuple[str, str, int | None]:
    """scheme, host, port: the one place credentials given for `url` may go (RFC 6454's origin)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(scheme)


def _get_same_origin(
    session: requests.Session, url: str, credentials: Credentials, deadline: float
) -> tuple[int, str, bytes] | None:
    """GET url with the credentials, following redirects only within its origin: (status, Content-Type,
    at most MAX_PAGE_BYTES of body).

    A redirect to another origin is not followed at all: pypiserver sends projects it does not have to
    its fallback (a public index), and what is there says nothing about this server; the credentials
    must never travel there. None means "the server does not have it"."""
    origin = _origin(url)
    shown = public_url(url)
    for _ in range(MAX_REDIRECTS + 1):
        timeout = max(0.1, min(30.0, deadline - time.monotonic()))
        with session.get(
            url,
            headers={"Accept": PAGE_ACCEPT},
            auth=credentials.auth(),
            allow_redirects=False,
            timeout=timeout,
            stream=True,
        ) as response:
            if not response.is_redirect:
                if response.status_code >= 400:
                    return response.status_code, "", b""
                body = bytearray()
                for block in response.iter_content(1 << 16):
                    body += block
                    if len(body) > MAX_PAGE_BYTES:
                        raise PublishError(f"{shown}: the page is larger than {MAX_PAGE_BYTES} bytes")
                return response.status_code, response.headers.get("Content-Type", ""), bytes(body)
            location = urljoin(url, response.headers.get("Location", ""))
        if _origin(location) != origin:
            return None
        url = location
    raise PublishError(f"{shown}: more than {MAX_REDIRECTS} redirects")


def _read_page(page_url: str, credentials: Credentials) -> tuple[int, str, bytes] | None:
    """The page, read within PAGE_SECONDS in all. A per-read timeout does not bound a server that sends a
    byte every few seconds, so the read runs in a daemon thread that is abandoned at the deadline."""
    shown = public_url(page_url)
    deadline = time.monotonic() + PAGE_SECONDS
    outcome: list[tuple[int, str, bytes] | BaseException | None] = []

    def read() -> None:
        try:
            with requests.Session() as session:
                outcome.append(_get_same_origin(session, page_url, credentials, deadline))
        except BaseException as exc:  # handed to the caller's thread
            outcome.append(exc)

    reader = threading.Thread(target=read, name="rewheel-page", daemon=True)
    reader.start()
    reader.join(PAGE_SECONDS)
    if not outcome:
        raise PublishError(
            f"{shown}: the page was not read within {PAGE_SECONDS:.0f} s; not uploading without "
            "knowing what the server already has"
        )
    result = outcome[0]
    if isinstance(result, PublishError):
        raise result
    if isinstance(result, (requests.ConnectionError, requests.Timeout)):
        raise PublishError(
            f"{shown}: cannot read the project's page ({type(result).__name__}); not uploading without "
            "knowing what the server already has"
        )
    if isinstance(result, requests.RequestException):
        raise PublishError(f"{shown}: {credentials.scrub(str(result))}")
    if isinstance(result, BaseException):
        raise result
    return result


def _published_files(simple_url: str, project: str, credentials: Credentials) -> dict[str, str]:
    """File name -> sha256 ("unknown" when the page shows none) of what the server lists for `project`;
    {} when the server does not have the project.

    Raises PublishError when the page cannot be read (too big, too slow, unreachable) or is not a Simple
    API page: then nothing can be said about immutability, and uploading blind could replace a file in
    effect."""
    page_url = urljoin(simple_url.rstrip("/") + "/", f"{project}/")
    shown = public_url(page_url)
    for attempt in range(PAGE_ATTEMPTS):
        page = _read_page(page_url, credentials)
        if page is None or page[0] < 500 or attempt == PAGE_ATTEMPTS - 1:
            break
        time.sleep(2**attempt)  # a 5xx: the server or its proxy is restarting; ask again, as twine does
    if page is None or page[0] == 404:
        return {}
    status, content_type, body = page
    if status >= 400:
        raise PublishError(f"{shown}: HTTP {status}")
    if "json" in content_type:
        return _files_from_json(shown, body)
    parser = AnchorParser()
    parser.feed(body.decode("utf-8", errors="replace"))
    files = {}
    for anchor in parser.anchors:
        link, _, fragment = (anchor.get("href") or "").partition("#")
        name = unquote(link.rsplit("/", 1)[-1])
        files[name] = fragment[len("sha256=") :] if fragment.startswith("sha256=") else "unknown"
    return files


def _files_from_json(shown: str, body: bytes) -> dict[str, str]:
    try:
        document = json.loads(body)
        files = {}
        for item in document.get("files", []):
            hashes = item.get("hashes") or {}
            files[str(item["filename"])] = str(hashes.get("sha256") or "unknown")
        return files
    except (ValueError, AttributeError, KeyError, TypeError, RecursionError) as exc:
        raise PublishError(
            f"{shown}: the server's answer is not a PEP 691 page ({type(exc).__name__}: {exc}); "
            "cannot check that the upload replaces nothing"
        ) from None


def _conflict(wheel: Path, sha256: str, published: dict[str, str]) -> str | None:
    """Why `wheel` may not be uploaded next to `published`, or None (also None when it is already there)."""
    identity = wheel_identity(wheel.name)
    for name, other_sha256 in sorted(published.items()):
        if name == wheel.name:
            if other_sha256 != sha256:
                return (
                    f"{wheel.name}: the server already has this file with sha256 {other_sha256}, this one is "
                    f"{sha256}; published files are immutable (bump the version or build tag)"
                )
            continue
        try:
            same = name.endswith(".whl") and wheel_identity(name) == identity
        except PublishError:
            same = False
        if same:
            return (
                f"{wheel.name}: the server already has {name}, the same project, version and tags to pip; "
                "published files are immutable (bump the version or build tag)"
            )
    return None


def upload(
    wheels: list[Path],
    repository_url: str,
    *,
    simple_url: str | None = None,
    attempts: int = 4,
    backoff: float = 1.0,
) -> list[UploadOutcome]:
    credentials = Credentials.from_environment(repository_url)
    # Credentials travel in twine's environment and our Authorization header, never in a URL or argv.
    repository_url = public_url(repository_url)
    simple = public_url(simple_url) if simple_url else urljoin(repository_url.rstrip("/") + "/", "simple/")
    outcomes = []
    for wheel in wheels:
        sha256 = sha256_file(wheel)
        project = project_of(wheel.name)
        published = _published_files(simple, project, credentials)
        why = _conflict(wheel, sha256, published)
        if why:
            raise PublishError(why)
        if published.get(wheel.name) == sha256:
            log.say(f"upload: {wheel.name} is already on the server with the same sha256")
            outcomes.append(UploadOutcome(wheel.name, "unchanged", 0))
            continue
        outcome = _upload_one(wheel, repository_url, credentials, attempts, backoff)
        # A 200 says the server took the request, not that it stores and lists these bytes: the page says.
        for read in range(1, CONFIRM_READS + 1):
            listed = _published_files(simple, project, credentials).get(wheel.name)
            if listed == sha256:
                break
            if read < CONFIRM_READS:
                time.sleep(backoff * read)
        else:
            shown = "does not list it" if listed is None else f"lists it with sha256 {listed}"
            log.say(f"upload: {wheel.name} unconfirmed: the server's page {shown}, this file is {sha256}")
            outcome.status = "unconfirmed"
        outcomes.append(outcome)
    return outcomes


def _upload_one(
    wheel: Path,
    repository_url: str,
    credentials: Credentials,
    attempts: int,
    backoff: float,
) -> UploadOutcome:
    environment = dict(os.environ)
    if credentials.username is not None:
        environment["TWINE_USERNAME"] = credentials.username
    if credentials.password is not None:
        environment["TWINE_PASSWORD"] = credentials.password
    command = [
        sys.executable, "-m", "twine", "upload", "--non-interactive", "--disable-progress-bar",
        "--repository-url", repository_url, str(wheel),
    ]  # fmt: skip
    for attempt in range(1, attempts + 1):
        log.say(f"upload: {wheel.name} to {public_url(repository_url)} (attempt {attempt}/{attempts})")
        try:
            result = subprocess.run(
                command,
                capture_output=True,
                text=True,
                env=environment,
                stdin=subprocess.DEVNULL,
                timeout=900,
            )
        except FileNotFoundError:
            raise PublishError("twine is not installed: pip install 'rewheel[publish]'") from None
        except subprocess.TimeoutExpired:
            output, code = "twine timed out", -1
        else:
            output, code = credentials.scrub(result.stdout + result.stderr), result.returncode
        if code == 0:
            return UploadOutcome(wheel.name, "uploaded", attempt)
        if "No module named twine" in output:
            raise PublishError("twine is not installed: pip install 'rewheel[publish]'")
        reason = _last_error_line(output)
        if ALREADY_EXISTS.search(output):
            raise PublishError(
                f"{wheel.name}: the server refused it as already existing ({reason}) and its page did not "
                "show the file's hash to compare"
            )
        if not TRANSIENT.search(output) or attempt == attempts:
            raise PublishError(f"{wheel.name}: upload failed after {attempt} attempt(s): {reason}")
        delay = backoff * 2 ** (attempt - 1)
        log.say(f"upload: transient failure ({reason}); retrying in {delay:.1f} s")
        time.sleep(delay)
    raise AssertionError("unreachable")


def _last_error_line(output: str) -> str:
    line = error_line(
        output, lambda line: "Error" in line or "error" in line or bool(re.search(r"\b[45]\d\d\b", line))
    )
    return line[:300]
