"""Where rewheel keeps things: one cache root (overridable) and the project's own folders."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """The root of every cache (downloads, runtimes, build state).

    REWHEEL_CACHE_DIR wins so CI and tests can share or isolate caches; otherwise the user cache dir.
    """
    configured = os.environ.get("REWHEEL_CACHE_DIR")
    if configured:
        return Path(configured).expanduser().resolve()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("rewheel", appauthor=False))


def downloads_cache() -> Path:
    return cache_root() / "sha256"


def runtimes_root() -> Path:
    return cache_root() / "runtimes"


def project_root(start: Path | None = None) -> Path:
    """The folder holding recipes/ (walks up from `start` or the cwd); the cwd when none is found."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "recipes").is_dir():
            return candidate
    return here


def default_wheelhouse() -> Path:
    return Path(os.environ.get("REWHEEL_WHEELHOUSE", project_root() / "wheelhouse"))


def zig_cache_dir(cache_root: Path) -> Path:
    # zig compiles libc stubs and compiler-rt once per triple; keeping its cache under rewheel's makes a second
    # build quick and lets `rm -r <cache>` reset everything.
    return cache_root / "zig" / "zig-cache"
