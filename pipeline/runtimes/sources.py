"""A configured source of runtime archives, tried before building (pipeline/runtimes/archive.py).

REWHEEL_RUNTIME_SOURCE names a folder or a static http(s) URL holding `<name>.json` manifests and their
`<name>.tar.xz` archives, as `rewheel runtimes export` writes them (any static file server will do: the
private index's own `rewheel serve` over that folder, a release's assets, `python -m http.server`). The
manifest pins the archive by sha256; the archive is fetched through pipeline.fetch (so it lands in the
content-addressed download cache only when its hash matches) and imported only when it matches this
rewheel's recipe for that name. Anything else (the source is unreachable, has no archive for that name, holds
a wrong or mismatched one) is said in one line, and rewheel builds as it would without a source.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pipeline.errors import FetchError, RewheelError
from pipeline.log import log

ENV = "REWHEEL_RUNTIME_SOURCE"
MAX_MANIFEST_BYTES = 1 << 20
TIMEOUT = 20
# Names this process imported from the source (so `runtimes build` and progress say "imported", not "built").
_IMPORTED: set[str] = set()


def imported_from_source(name: str) -> bool:
    return name in _IMPORTED


def configured_source() -> str | None:
    value = os.environ.get(ENV, "").strip()
    return value or None


def _is_url(source: str) -> bool:
    return urlparse(source).scheme in ("http", "https")


def _manifest(source: str, name: str) -> dict[str, Any]:
    if _is_url(source):
        url = f"{source.rstrip('/')}/{name}.json"
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
                raw = response.read(MAX_MANIFEST_BYTES + 1)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise FetchError(f"it has no {name}.json") from None
            raise FetchError(f"{url}: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise FetchError(f"unreachable ({getattr(exc, 'reason', exc)})") from None
    else:
        path = Path(source).expanduser() / f"{name}.json"
        if not path.parent.is_dir():
            raise FetchError("no such folder")
        if not path.is_file():
            raise FetchError(f"it has no {name}.json")
        raw = path.read_bytes()[: MAX_MANIFEST_BYTES + 1]
    if len(raw) > MAX_MANIFEST_BYTES:
        raise FetchError(f"{name}.json is larger than a manifest can be")
    try:
        data = json.loads(raw)
    except ValueError:
        raise FetchError(f"{name}.json is not JSON") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("sha256"), str)
        or not isinstance(data.get("archive"), str)
    ):
        raise FetchError(f"{name}.json is not a runtime archive manifest")
    return data


def fetch_archive(source: str, name: str) -> tuple[Path, dict[str, Any]]:
    """The archive for `name` from `source`, fetched and checked against its manifest's sha256."""
    from pipeline.fetch import Pin, fetch

    manifest = _manifest(source, name)
    filename = Path(str(manifest["archive"])).name  # a manifest names a file beside it, never a path
    if _is_url(source):
        pin = Pin(filename=filename, sha256=str(manifest["sha256"]), url=f"{source.rstrip('/')}/{filename}")
        return fetch(pin), manifest
    return Path(source).expanduser() / filename, manifest


def take_from_source(name: str) -> bool:
    """Import `name` from the configured source; False (with one line saying why) when that did not happen."""
    from pipeline.runtimes import archive

    source = configured_source()
    if source is None:
        return False
    try:
        item = archive.artefact(name)
        if item.ready():
            return True
        started = time.monotonic()
        path, manifest = fetch_archive(source, name)
        archive.import_archive(path, sha256=str(manifest["sha256"]), manifest=manifest)
    except (RewheelError, OSError) as exc:
        log.say(f"{name}: not taken from {source}: {exc}; building it")
        return False
    _IMPORTED.add(name)
    log.say(f"{name}: imported from {source} in {time.monotonic() - started:.1f} s")
    return True


_PRIMED = threading.Lock()
_PRIMED_DONE: set[str] = set()


def prime_shared_cache(name: str) -> None:
    """Take a shared build cache (`zig-cache`) from the configured source once per process, before its first
    use; a cache already there is kept."""
    if configured_source() is None:
        return
    with _PRIMED:
        if name in _PRIMED_DONE:
            return
        _PRIMED_DONE.add(name)
        take_from_source(name)
