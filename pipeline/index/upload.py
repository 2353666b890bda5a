"""Upload wheels to an index server (pypiserver, devpi, Artifactory, Nexus, GitLab) with twine.

Credentials come from the environment (REWHEEL_INDEX_USERNAME / REWHEEL_INDEX_PASSWORD, else twine's own
TWINE_USERNAME / TWINE_PASSWORD) or from keyring through twine; they are handed to twine in its
environment, never on a command line (other users can read those), and scrubbed from every message.

Immutability on a server: before uploading, the server's simple page for the project is read; the same
file name with the same sha256 is a no-op, with another sha256 it is refused. Transient failures (HTTP 5xx,
connection resets, timeouts) are retried with exponential backoff.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from pipeline.index.static import AnchorParser
from pipeline.index.wheelinfo import PublishError, project_of

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

    def header(self) -> dict[str, str]:
        if self.username is None or self.password is None:
            return {}
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}


@dataclass
class UploadOutcome:
    filename: str
    status: str  # "uploaded" | "unchanged"
    attempts: int

    def to_json(self) -> dict[str, object]:
        return {"filename": self.filename, "status": self.status, "attempts": self.attempts}


def public_url(url: str) -> str:
    """The URL without any user:password part, for messages."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def _published_hash(simple_url: str, filename: str, credentials: Credentials) -> str | None:
    """The sha256 the server lists for `filename`, or None when the server does not have it.

    Raises PublishError when the server's answer cannot tell (twine's upload then decides)."""
    project = project_of(filename)
    page_url = urljoin(simple_url.rstrip("/") + "/", f"{project}/")
    request = urllib.request.Request(
        page_url,
        headers={
            "Accept": "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
            "text/html;q=0.1",
            **credentials.header(),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            # A server may redirect unknown projects to a public index (pypiserver's fallback): a page
            # from another host says nothing about this server.
            if urlsplit(response.geturl()).netloc != urlsplit(page_url).netloc:
                return None
            body = response.read().decode("utf-8", errors="replace")
            content_type = response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise PublishError(f"{public_url(page_url)}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise PublishError(f"{public_url(page_url)}: {credentials.scrub(str(exc))}") from None
    if "json" in content_type:
        for item in json.loads(body).get("files", []):
            if item.get("filename") == filename:
                return str(item.get("hashes", {}).get("sha256") or "unknown")
        return None
    parser = AnchorParser()
    parser.feed(body)
    for anchor in parser.anchors:
        href = anchor.get("href") or ""
        link, _, fragment = href.partition("#")
        if link.rsplit("/", 1)[-1] == filename:
            return fragment[len("sha256=") :] if fragment.startswith("sha256=") else "unknown"
    return None


def upload(
    wheels: list[Path],
    repository_url: str,
    *,
    simple_url: str | None = None,
    attempts: int = 4,
    backoff: float = 1.0,
    progress: Callable[[str], None] = lambda _: None,
) -> list[UploadOutcome]:
    credentials = Credentials.from_environment(repository_url)
    # Credentials travel in twine's environment and our Authorization header, never in a URL or argv.
    repository_url = public_url(repository_url)
    simple = public_url(simple_url) if simple_url else urljoin(repository_url.rstrip("/") + "/", "simple/")
    outcomes = []
    for wheel in wheels:
        sha256 = hashlib.sha256(wheel.read_bytes()).hexdigest()
        try:
            published = _published_hash(simple, wheel.name, credentials)
        except PublishError as exc:
            progress(f"upload: cannot read the server's page for {wheel.name} ({exc}); uploading anyway")
            published = None
        if published == sha256:
            progress(f"upload: {wheel.name} is already on the server with the same sha256")
            outcomes.append(UploadOutcome(wheel.name, "unchanged", 0))
            continue
        if published is not None:
            raise PublishError(
                f"{wheel.name}: the server already has this file with sha256 {published}, this one is "
                f"{sha256}; published files are immutable (bump the version or build tag)"
            )
        outcomes.append(_upload_one(wheel, repository_url, credentials, attempts, backoff, progress))
    return outcomes


def _upload_one(
    wheel: Path,
    repository_url: str,
    credentials: Credentials,
    attempts: int,
    backoff: float,
    progress: Callable[[str], None],
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
        progress(f"upload: {wheel.name} to {public_url(repository_url)} (attempt {attempt}/{attempts})")
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
        progress(f"upload: transient failure ({reason}); retrying in {delay:.1f} s")
        time.sleep(delay)
    raise AssertionError("unreachable")


def _last_error_line(output: str) -> str:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for line in reversed(lines):
        if "Error" in line or "error" in line or re.search(r"\b[45]\d\d\b", line):
            return line[:300]
    return (lines[-1] if lines else "no output")[:300]
