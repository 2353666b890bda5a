"""`rewheel serve`: a small HTTP server for a static index tree, with PEP 691 content negotiation.

Meant for development, CI and small teams on a trusted network; real deployments put the same tree
behind nginx, S3 or GitHub Pages (docs/index.md has the settings). Folder pages under the tree are
answered with index.json or index.html depending on the client's Accept header (q values honoured);
hidden paths (the .rewheel/ lock folder) and folder listings are never served.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"
# What a client may name -> (what we send, which file); order = our preference on a tie.
OFFERS: list[tuple[str, str, str]] = [
    (JSON_V1, JSON_V1, "index.json"),
    ("application/vnd.pypi.simple.latest+json", JSON_V1, "index.json"),
    (HTML_V1, HTML_V1, "index.html"),
    ("application/vnd.pypi.simple.latest+html", HTML_V1, "index.html"),
    (TEXT_HTML, TEXT_HTML, "index.html"),
]
FORMAT_QUERY = {"json": JSON_V1, "html": HTML_V1}


def _parse_accept(header: str) -> list[tuple[str, float]]:
    ranges = []
    for part in header.split(","):
        fields = [f.strip() for f in part.split(";")]
        if not fields[0]:
            continue
        quality = 1.0
        for parameter in fields[1:]:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = max(0.0, min(1.0, float(value)))
                except ValueError:
                    quality = 0.0
        ranges.append((fields[0].lower(), quality))
    return ranges


def _quality(media_type: str, ranges: list[tuple[str, float]]) -> float:
    """The q the client gives `media_type`: the most specific matching range wins (RFC 9110)."""
    kind, _, _ = media_type.partition("/")
    best: tuple[int, float] | None = None
    for pattern, quality in ranges:
        if pattern == media_type:
            specificity = 2
        elif pattern == f"{kind}/*":
            specificity = 1
        elif pattern == "*/*":
            specificity = 0
        else:
            continue
        if best is None or specificity > best[0]:
            best = (specificity, quality)
    return best[1] if best else 0.0


def negotiate(accept: str | None, available: set[str]) -> tuple[str, str] | None:
    """(Content-Type to send, file to send) for a folder page, or None when nothing acceptable exists.

    No Accept header means text/html, as PEP 691 asks for the benefit of old clients."""
    if not accept or not accept.strip():
        accept = TEXT_HTML
    ranges = _parse_accept(accept)
    best: tuple[float, int, str, str] | None = None
    for rank, (offered, send, filename) in enumerate(OFFERS):
        if filename not in available:
            continue
        quality = _quality(offered, ranges)
        if quality <= 0:
            continue
        if best is None or quality > best[0] or (quality == best[0] and rank < best[1]):
            best = (quality, rank, send, filename)
    return (best[2], best[3]) if best else None


class IndexRequestHandler(SimpleHTTPRequestHandler):
    server_version = "rewheel-serve"
    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".whl": "application/octet-stream",
        ".metadata": "text/plain; charset=utf-8",
        ".json": "application/json",
    }

    def send_head(self) -> Any:
        parts = urlsplit(self.path)
        if any(segment.startswith(".") for segment in unquote(parts.path).split("/") if segment):
            self.send_error(HTTPStatus.NOT_FOUND)
            return None
        folder = Path(self.translate_path(self.path))
        if folder.is_dir() and parts.path.endswith("/"):
            available = {name for name in ("index.json", "index.html") if (folder / name).is_file()}
            if not available:
                self.send_error(HTTPStatus.NOT_FOUND)
                return None
            wanted = parse_qs(parts.query).get("format", [None])[0]
            accept = FORMAT_QUERY.get(wanted or "", self.headers.get("Accept"))
            choice = negotiate(accept, available)
            if choice is None:
                self.send_error(
                    HTTPStatus.NOT_ACCEPTABLE, "serves application/vnd.pypi.simple.v1+json or +html"
                )
                return None
            content_type, filename = choice
            return self._send_file(folder / filename, content_type)
        return super().send_head()

    def _send_file(self, path: Path, content_type: str) -> Any:
        handle = path.open("rb")
        stat = os.fstat(handle.fileno())
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(stat.st_size))
        self.send_header("Last-Modified", self.date_time_string(int(stat.st_mtime)))
        self.send_header("Vary", "Accept")
        self.send_header("Cache-Control", "max-age=60")
        self.end_headers()
        return handle

    def list_directory(self, path: Any) -> Any:
        # Static hosts don't list folders; neither do we (it would also leak what is not yet indexed).
        self.send_error(HTTPStatus.NOT_FOUND)
        return None

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"serve: {self.address_string()} {format % args}\n")
        sys.stderr.flush()


def make_server(root: Path, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    handler = partial(IndexRequestHandler, directory=str(root))
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def serve_forever(root: Path, host: str, port: int, announce: Callable[[str], None]) -> None:
    server = make_server(root, host, port)
    bound_host, bound_port = str(server.server_address[0]), int(server.server_address[1])
    shown_host = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
    announce(f"serving {root} at http://{shown_host}:{bound_port}/simple/ (Ctrl-C to stop)")
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
