"""Facts about installed tools (versions, an interpreter's sysconfig), remembered between runs.

Asking a tool for its version is a subprocess, and a no-op `rewheel build` over every recipe must not pay for
one per job (pyenv shims alone cost a few hundred milliseconds each). A fact is stored with the identity of
the files it was read from (path, size, mtime in ns); when any of them changes, or disappears, the fact is
read again. Stored in <cache>/tool-facts.json; a damaged store is simply rebuilt.

    version = remembered("zig-version", [zig_binary], lambda: run_zig_version())
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pipeline.util import atomic_path

T = TypeVar("T")

_STORE_NAME = "tool-facts.json"
_loaded: dict[Path, dict[str, dict[str, object]]] = {}


def _store_path() -> Path:
    from pipeline.paths import cache_root

    return cache_root() / _STORE_NAME


def file_stamp(path: Path) -> list[object]:
    """What identifies a file's current content cheaply; ["missing"] when it is not there."""
    try:
        info = os.stat(path)  # follows symlinks: a re-pointed pyenv or ziglang install changes the stamp
    except OSError:
        return [str(path), "missing"]
    return [str(path), info.st_size, info.st_mtime_ns]


def _load(store: Path) -> dict[str, dict[str, object]]:
    if store not in _loaded:
        try:
            data = json.loads(store.read_text(encoding="utf-8"))
            _loaded[store] = data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            _loaded[store] = {}
    return _loaded[store]


def _save(store: Path, facts: dict[str, dict[str, object]]) -> None:
    try:
        with atomic_path(store) as temporary:
            temporary.write_text(json.dumps(facts, sort_keys=True), encoding="utf-8")
    except OSError:
        pass  # a read-only cache only costs speed


def remembered(name: str, files: list[Path], compute: Callable[[], T]) -> T:
    """`compute()`'s JSON-serialisable result, reused while every file in `files` keeps its stamp."""
    store = _store_path()
    facts = _load(store)
    stamps = [file_stamp(Path(f)) for f in files]
    entry = facts.get(name)
    if entry is not None and entry.get("stamps") == stamps:
        return entry["value"]  # type: ignore[return-value]
    value = compute()
    facts[name] = {"stamps": stamps, "value": value}
    _save(store, facts)
    return value


def forget() -> None:
    """Drop the in-process copy (tests that switch cache dirs)."""
    _loaded.clear()
