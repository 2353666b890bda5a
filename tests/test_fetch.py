"""The fetch layer: pinned by sha256, content-addressed cache, nothing unverified handed out."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.errors import FetchError, HashMismatch
from pipeline.fetch import Pin, cached_path, fetch

SIX_WHEEL = Pin(
    filename="six-1.16.0-py2.py3-none-any.whl",
    sha256="8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254",
    project="six",
    version="1.16.0",
)
MARKUPSAFE_SDIST = Pin(
    filename="MarkupSafe-2.1.5.tar.gz",
    sha256="d283d37a890ba4c1ae73ffadf8046435c76e7bc2247bbb63c00bd1a709c6544b",
    project="MarkupSafe",
    version="2.1.5",
)


@pytest.fixture
def local_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on 127.0.0.1 serving a folder."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def test_url_fetch_verifies_and_caches(tmp_path: Path, local_server: tuple[str, Path]) -> None:
    base, root = local_server
    payload = b"real bytes " * 1000
    (root / "thing-1.0.tar.gz").write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    cache = tmp_path / "cache"
    pin = Pin(filename="thing-1.0.tar.gz", sha256=digest, url=f"{base}/thing-1.0.tar.gz")
    path = fetch(pin, cache)
    assert path == cached_path(pin, cache) and path.read_bytes() == payload
    # Cache hit: the server no longer has the file, the fetch still succeeds from the cache.
    (root / "thing-1.0.tar.gz").unlink()
    assert fetch(pin, cache) == path


def test_url_fetch_mismatch_names_both_hashes_and_caches_nothing(
    tmp_path: Path, local_server: tuple[str, Path]
) -> None:
    base, root = local_server
    (root / "evil-1.0.tar.gz").write_bytes(b"tampered")
    cache = tmp_path / "cache"
    expected = "0" * 64
    with pytest.raises(HashMismatch) as info:
        fetch(Pin(filename="evil-1.0.tar.gz", sha256=expected, url=f"{base}/evil-1.0.tar.gz"), cache)
    message = str(info.value)
    assert expected in message and hashlib.sha256(b"tampered").hexdigest() in message
    assert not [p for p in cache.rglob("*") if p.is_file()], "an unverified file was left in the cache"


def test_url_fetch_missing_file_is_one_line(tmp_path: Path, local_server: tuple[str, Path]) -> None:
    base, _ = local_server
    with pytest.raises(FetchError, match="download failed"):
        fetch(Pin(filename="nope.tar.gz", sha256="1" * 64, url=f"{base}/nope.tar.gz"), tmp_path)


def test_index_fetch_of_real_wheel_and_sdist(shared_cache: Path) -> None:
    cache = shared_cache / "sha256"
    wheel = fetch(SIX_WHEEL, cache)
    assert wheel.name == SIX_WHEEL.filename
    sdist = fetch(MARKUPSAFE_SDIST, cache)
    assert sdist.stat().st_size > 10_000


def test_index_fetch_wrong_pin_is_refused_before_use(tmp_path: Path) -> None:
    wrong = Pin(filename=SIX_WHEEL.filename, sha256="f" * 64, project="six", version="1.16.0")
    with pytest.raises(HashMismatch) as info:
        fetch(wrong, tmp_path)
    # One line naming the file, the pinned and the actual sha256.
    message = str(info.value)
    assert SIX_WHEEL.filename in message and "f" * 64 in message and SIX_WHEEL.sha256 in message
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_index_fetch_of_meson_sdist_runs_no_metadata_hook(shared_cache: Path) -> None:
    """siphash24's metadata step (meson) would fetch its subprojects from the network: fetching it by name
    must only download the pinned file (pip download used to prepare its metadata and fail)."""
    pin = Pin(
        filename="siphash24-1.7.tar.gz",
        sha256="6e90fee5f199ea25b4e7303646b31872a437174fe885a93dbd4cf7784eb48164",
        project="siphash24",
        version="1.7",
    )
    path = fetch(pin, shared_cache / "sha256")
    assert path.name == pin.filename and path.stat().st_size == 19801


def _local_index(root: Path, project: str, filename: str, payload: bytes, listed_sha256: str | None) -> None:
    """A PEP 503 HTML simple index (what a private index or `rewheel publish` serves), real files on disk."""
    page = root / "simple" / project
    page.mkdir(parents=True)
    (root / "files").mkdir(exist_ok=True)
    (root / "files" / filename).write_bytes(payload)
    fragment = f"#sha256={listed_sha256}" if listed_sha256 else ""
    (page / "index.html").write_text(
        f'<html><body><a href="../../files/{filename}{fragment}">{filename}</a></body></html>',
        encoding="utf-8",
    )


@pytest.mark.parametrize("listed", [True, False])
def test_index_fetch_reads_the_configured_index(
    tmp_path: Path, local_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch, listed: bool
) -> None:
    base, root = local_server
    payload = b"sdist bytes " * 100
    digest = hashlib.sha256(payload).hexdigest()
    _local_index(root, "demo-pkg", "demo_pkg-1.0.tar.gz", payload, digest if listed else None)
    monkeypatch.setenv("PIP_INDEX_URL", f"{base}/simple/")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", f"{base}/simple/")
    pin = Pin(filename="demo_pkg-1.0.tar.gz", sha256=digest, project="Demo.Pkg", version="1.0")
    assert fetch(pin, tmp_path / "cache").read_bytes() == payload
    # A wrong pin: the error names the file, the pinned and the actual sha256 (from the index's listing or,
    # when the index lists none, from the downloaded bytes); nothing is cached.
    wrong = Pin(filename="demo_pkg-1.0.tar.gz", sha256="e" * 64, project="demo-pkg", version="1.0")
    with pytest.raises(HashMismatch) as info:
        fetch(wrong, tmp_path / "other")
    assert (
        "demo_pkg-1.0.tar.gz" in str(info.value) and "e" * 64 in str(info.value) and digest in str(info.value)
    )
    assert not [p for p in (tmp_path / "other").rglob("*") if p.is_file()]
    missing = Pin(filename="demo_pkg-2.0.tar.gz", sha256=digest, project="demo-pkg", version="2.0")
    with pytest.raises(FetchError, match="the index has no file demo_pkg-2.0.tar.gz"):
        fetch(missing, tmp_path / "other")


def test_cache_hit_needs_no_network(shared_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = shared_cache / "sha256"
    fetch(SIX_WHEEL, cache)
    # Any attempt to reach an index now fails: a hit must not try.
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple/")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    assert fetch(SIX_WHEEL, cache).is_file()


def test_bad_pin_format_rejected(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="64 lowercase hex"):
        fetch(Pin(filename="x.whl", sha256="ABC", url="http://127.0.0.1:9/x.whl"), tmp_path)
