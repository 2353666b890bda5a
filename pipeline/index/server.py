"""`rewheel serve`: a small HTTP server for a static index tree, with PEP 691 content negotiation.

Meant for development, CI and small teams on a trusted network; real deployments put the same tree
behind nginx, S3 or GitHub Pages (docs/index.md has the settings; `rewheel index nginx-config` writes
nginx's). Folder pages under the tree are answered with index.json or index.html depending on the
client's Accept header (q values honoured); hidden paths (the .rewheel/ lock folder) and folder listings
are never served, and only regular files whose real path (links resolved) is inside the tree are.

Built on the standard library's http.server rather than a third-party server: the index is a handful of
static files plus one negotiation rule, and the pieces http.server lacks for this (a bounded worker
pool, a real listen backlog, idle timeouts, a deadline for a request's headers, resolved-path checks) are
a few lines here.
"""

from __future__ import annotations

import contextlib
import os
import resource
import selectors
import socket
import stat
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from http import HTTPStatus
from http.server import HTTPServer, SimpleHTTPRequestHandler
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
LISTEN_BACKLOG = 512  # the kernel caps it at net.core.somaxconn (4096 on current kernels)
WORKERS = 16
MAX_CONNECTIONS = 1024  # open at once; the oldest idle one is closed to make room for a new one
IDLE_TIMEOUT_SECONDS = 10.0
# From a worker taking a connection to the end of its request headers: a client sending a byte every few
# seconds never trips the per-read timeout, and would hold a worker for as long as it likes (slowloris).
HEADER_TIMEOUT_SECONDS = 5.0


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
    # A worker waits this long for the next bytes of a request before it gives up on the connection.
    timeout = IDLE_TIMEOUT_SECONDS
    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".whl": "application/octet-stream",
        ".metadata": "text/plain; charset=utf-8",
        ".json": "application/json",
    }
    pages: frozenset[str] = frozenset({"index.json", "index.html"})
    header_timeout = HEADER_TIMEOUT_SECONDS
    _header_timer: threading.Timer | None = None
    _header_late = False

    def handle_one_request(self) -> None:
        # A total deadline for the request line and headers, whatever the pace of the bytes: when it
        # passes, reading is shut down, so the worker's blocked read returns at once.
        self._header_late = False
        self._header_timer = threading.Timer(self.header_timeout, self._headers_too_slow)
        self._header_timer.daemon = True
        self._header_timer.start()
        try:
            super().handle_one_request()
        finally:
            self._header_timer.cancel()

    def _headers_too_slow(self) -> None:
        self._header_late = True
        with contextlib.suppress(OSError):  # already closed
            self.connection.shutdown(socket.SHUT_RD)

    def parse_request(self) -> bool:
        if self._header_timer is not None:
            self._header_timer.cancel()
        if self._header_late:  # what was read was cut off by the deadline: not a request to answer
            self.close_connection = True
            return False
        ok = super().parse_request()
        if self._header_late:
            self.close_connection = True
            return False
        return ok

    def _inside(self, path: str) -> Path | None:
        """The real path of `path` when it is inside the served root (links resolved), else None."""
        root = Path(os.path.realpath(self.directory))
        real = Path(os.path.realpath(path))
        return real if real == root or real.is_relative_to(root) else None

    def send_head(self) -> Any:
        try:
            return self._send_head()
        except OSError:
            # A path the file system refuses (a segment over 255 bytes: ENAMETOOLONG) names nothing served.
            self.send_error(HTTPStatus.NOT_FOUND)
            return None

    def _send_head(self) -> Any:
        parts = urlsplit(self.path)
        decoded = unquote(parts.path)
        if "\x00" in decoded or "\x00" in self.path:
            self.send_error(HTTPStatus.BAD_REQUEST, "NUL in the path")
            return None
        if any(segment.startswith(".") for segment in decoded.split("/") if segment):
            self.send_error(HTTPStatus.NOT_FOUND)
            return None
        translated = self.translate_path(self.path)
        folder = self._inside(translated)
        if folder is not None and folder.is_dir():
            if not parts.path.endswith("/"):
                return super().send_head()  # the redirect to the folder's URL with a slash
            available: set[str] = {
                name
                for name in ("index.json", "index.html")
                if name in self.pages and self._regular_file(folder / name) is not None
            }
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
            return self._send_file(folder / filename, content_type, vary=True)
        path = self._regular_file(Path(translated))
        if path is None or parts.path.endswith("/"):
            self.send_error(HTTPStatus.NOT_FOUND)
            return None
        return self._send_file(path, self.guess_type(str(path)), vary=False)

    def _regular_file(self, path: Path) -> Path | None:
        """Only regular files inside the root are served: a link out of it (files/x -> /etc) is a 404."""
        real = self._inside(str(path))
        root = Path(os.path.realpath(self.directory))
        if real is None or any(part.startswith(".") for part in real.relative_to(root).parts):
            return None  # also a link inside the tree to a hidden file (.rewheel/)
        try:
            return real if stat.S_ISREG(real.stat().st_mode) else None
        except OSError:
            return None

    def _send_file(self, path: Path, content_type: str, *, vary: bool) -> Any:
        try:
            handle = path.open("rb")
        except OSError:
            self.send_error(HTTPStatus.NOT_FOUND)
            return None
        size = os.fstat(handle.fileno())
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(size.st_size))
        self.send_header("Last-Modified", self.date_time_string(int(size.st_mtime)))
        if vary:
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


class BoundedHTTPServer(HTTPServer):
    """An HTTP server with a fixed pool of workers instead of a thread per connection.

    - The listen backlog is real: a burst of connections queues in the kernel instead of waiting for SYN
      retries.
    - A new connection waits in a "waiting room" (one selector, one thread) until it has sent something;
      only then does a worker take it. Idle connections cost a file descriptor, not a thread or a worker,
      and are closed after the idle timeout. A worker reading a request that stalls gives up after the
      same timeout (the handler's socket timeout).
    - At most `max_connections` connections are open at once; past that the longest-waiting idle one is
      closed to make room (or, with none idle, the new one), so held-open connections cannot lock others
      out and the process never runs out of file descriptors.
    - Errors in a request are logged as one line."""

    request_queue_size = LISTEN_BACKLOG

    def __init__(
        self,
        address: tuple[str, int],
        handler: Any,
        *,
        workers: int = WORKERS,
        idle_timeout: float = IDLE_TIMEOUT_SECONDS,
        max_connections: int | None = None,
    ) -> None:
        # Everything server_close() touches exists before the socket is bound: a bind that fails (port in
        # use, a host that does not resolve) calls server_close() from inside HTTPServer.__init__.
        self.workers = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="serve")
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections or _connection_limit()
        self.open_connections = 0
        self.lock = threading.Lock()
        self.waiting: OrderedDict[Any, tuple[Any, float]] = OrderedDict()  # socket -> (address, deadline)
        self.selector = selectors.DefaultSelector()
        self.closing = threading.Event()
        self.waiting_room = threading.Thread(
            target=self._watch_waiting_room, name="serve-waiting", daemon=True
        )
        super().__init__(address, handler)
        self.waiting_room.start()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Called by the accept loop: park the connection until it sends its request."""
        evicted = None
        with self.lock:
            if self.open_connections >= self.max_connections:
                if not self.waiting:
                    evicted = request  # every slot is busy with a real request: refuse the newcomer
                else:
                    evicted, _ = self.waiting.popitem(last=False)
                    self.selector.unregister(evicted)
                    self.open_connections -= 1
            if evicted is not request:
                self.open_connections += 1
                self.waiting[request] = (client_address, time.monotonic() + self.idle_timeout)
                self.selector.register(request, selectors.EVENT_READ)
        if evicted is not None:
            self.shutdown_request(evicted)

    def _watch_waiting_room(self) -> None:
        while not self.closing.is_set():
            try:
                ready = self.selector.select(timeout=0.1)
            except (OSError, ValueError):  # closed under us while shutting down
                return
            expired: list[Any] = []
            with self.lock:
                for key, _ in ready:
                    connection = key.fileobj
                    if connection not in self.waiting:
                        continue
                    address, _ = self.waiting.pop(connection)
                    self.selector.unregister(connection)
                    try:
                        self.workers.submit(self._handle, connection, address)
                    except RuntimeError:  # the pool is shut down
                        expired.append(connection)
                now = time.monotonic()
                while self.waiting:
                    connection, (_, deadline) = next(iter(self.waiting.items()))
                    if deadline > now:
                        break
                    self.waiting.popitem(last=False)
                    self.selector.unregister(connection)
                    expired.append(connection)
                self.open_connections -= len(expired)
            for connection in expired:
                self.shutdown_request(connection)

    def _handle(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self.lock:
                self.open_connections -= 1

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        sys.stderr.write(f"serve: {client_address[0]} request failed: {type(error).__name__}: {error}\n")
        sys.stderr.flush()

    def server_close(self) -> None:
        super().server_close()
        self.closing.set()
        if self.waiting_room.is_alive():
            self.waiting_room.join(timeout=5)
        with self.lock:
            for connection in self.waiting:
                self.shutdown_request(connection)
            self.waiting.clear()
            self.selector.close()
        self.workers.shutdown(wait=False, cancel_futures=True)


def _connection_limit() -> int:
    """Open connections allowed: MAX_CONNECTIONS, or fewer when the file descriptor limit is lower."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(16, min(MAX_CONNECTIONS, soft // 2 - 32))


def make_server(
    root: Path,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    pages: Iterable[str] = ("json", "html"),
    workers: int = WORKERS,
    idle_timeout: float = IDLE_TIMEOUT_SECONDS,
    header_timeout: float = HEADER_TIMEOUT_SECONDS,
    max_connections: int | None = None,
) -> BoundedHTTPServer:
    """A server for the index at `root`; `pages` limits which page formats it offers (an HTML-only
    server stands in for a plain static host when testing old clients)."""
    handler_class = type(
        "ConfiguredIndexRequestHandler",
        (IndexRequestHandler,),
        {
            "pages": frozenset(f"index.{kind}" for kind in pages),
            "timeout": idle_timeout,
            "header_timeout": header_timeout,
        },
    )
    handler = partial(handler_class, directory=str(root))
    return BoundedHTTPServer(
        (host, port), handler, workers=workers, idle_timeout=idle_timeout, max_connections=max_connections
    )


def serve_forever(root: Path, host: str, port: int, pages: Iterable[str] = ("json", "html")) -> None:
    from pipeline.log import log

    server = make_server(root, host, port, pages=pages)
    bound_host, bound_port = str(server.server_address[0]), int(server.server_address[1])
    shown_host = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
    log.say(f"serving {root} at http://{shown_host}:{bound_port}/simple/ (Ctrl-C to stop)")
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
