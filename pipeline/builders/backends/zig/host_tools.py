"""A cross build sees only target tools: the host's `*-config` scripts are hidden from PATH.

Build scripts ask `pg_config`, `xml2-config`, `curl-config`... where a library is; the host's copies answer
with host folders (`-L/usr/lib/x86_64-linux-gnu`), and an aarch64 link then fails deep in ld.lld (or, worse,
an x86_64 glibc library sneaks into a musl wheel). Each host config script found on PATH is shadowed by a
script of the same name that fails with one line; the target-built native prefixes' own `bin/` folders come
first on PATH, so their config scripts (built for the target, naming target folders) still answer.
pkg-config is not hidden: PKG_CONFIG_LIBDIR already points it at the target prefixes only.
"""

from __future__ import annotations

import os
import re
import stat
from importlib import resources
from pathlib import Path

from pipeline.util import fill_placeholders

_CONFIG_SCRIPT = re.compile(r".+[-_]config$")
_KEPT = re.compile(r"(^|-)pkg-?config$|^pkgconf$|^git-config$")

# What a hidden script becomes: a file with @name@ and @target@ (pipeline.util.fill_placeholders).
SHADOW = Path(str(resources.files("pipeline"))) / "resources" / "zig" / "host-config-shadow.sh"


def shadow_text(name: str, target: str) -> str:
    """The script standing in for the host's `name` in a cross build for `target`: one line, exit status 1."""
    return fill_placeholders(SHADOW, name=name, target=target)


def hide_host_config_scripts(search_path: str, dest: Path, target: str, keep: list[Path]) -> Path:
    """Write shadows for every host config script on `search_path` (except those in `keep` folders) into
    dest; return dest, to be put on PATH after `keep` and before the host's folders."""
    dest.mkdir(parents=True, exist_ok=True)
    kept = {str(k) for k in keep}
    for folder in search_path.split(os.pathsep):
        if not folder or folder in kept or not os.path.isdir(folder):
            continue
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            if not _CONFIG_SCRIPT.fullmatch(name) or _KEPT.search(name):
                continue
            if not os.access(os.path.join(folder, name), os.X_OK):
                continue
            shadow = dest / name
            if shadow.exists():
                continue
            shadow.write_text(shadow_text(name, target), encoding="utf-8")
            shadow.chmod(shadow.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return dest
