#!/usr/bin/env python3
"""bin/python3.X of a Windows runtime (windows_embed.py): runs python.org's python.exe under wine.

windows_embed writes this file as bin/python3.X with the host Python that outlives any venv on its #! line,
and the runtime's facts (python.exe, wine, the wine prefix, the DLLs to switch off) as JSON next to it
(CONFIG_NAME); bin/python3 and bin/python are symlinks to it.

Why Python rather than sh: CPython under wine cannot start when one of its standard streams is a regular file
(init_sys_streams: "[WinError 6] Invalid handle"; measured with wine 8.0), so this hands wine pipes for any
stream that is a file and copies the data itself. Standard library only: nothing of `pipeline` is importable
where it runs (a sandbox, a user's shell).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import IO, Any

CONFIG_NAME = "rewheel-wine-python.json"


def load_config(program: str) -> dict[str, Any]:
    """The runtime's facts, from the JSON file beside the real path of `program` (it is run through symlinks)."""
    path = os.path.join(os.path.dirname(os.path.realpath(program)), CONFIG_NAME)
    with open(path, encoding="utf-8") as handle:
        config: dict[str, Any] = json.load(handle)
    return config


def wine_environment(config: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` with the runtime's wine prefix, wine's debug output off and its DLL overrides added."""
    env = dict(environ, WINEPREFIX=config["prefix"], WINEDEBUG="-all")
    disabled = list(config["disabled_dlls"])
    # winedbg would print a page of registers for a crash; the first line (which function, which DLL) is the news.
    overrides = ["winedbg.exe=d"] + ([",".join(disabled) + "="] if disabled else [])
    env["WINEDLLOVERRIDES"] = ";".join(filter(None, [env.get("WINEDLLOVERRIDES"), *overrides]))
    return env


def is_file(fd: int) -> bool:
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        return False


def run(config: Mapping[str, Any], args: Sequence[str]) -> int:
    """Run python.exe with `args` under wine; return its exit status."""
    # CPython under wine dies when a standard stream is a regular file (WinError 6): give it pipes instead.
    stdin = subprocess.PIPE if is_file(0) else None
    stdout = subprocess.PIPE if is_file(1) else None
    stderr = subprocess.PIPE if is_file(2) else None
    process = subprocess.Popen(
        [config["wine"], config["exe"], *args],
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        env=wine_environment(config, os.environ),
    )
    copies = []
    if process.stdin is not None:
        child_stdin = process.stdin

        def feed() -> None:
            try:
                shutil.copyfileobj(sys.stdin.buffer, child_stdin)
            finally:
                child_stdin.close()

        # A daemon: python.exe may exit without reading all of its input.
        copies.append(threading.Thread(target=feed, daemon=True))
    outputs: list[tuple[IO[bytes] | None, IO[bytes]]] = [
        (process.stdout, sys.stdout.buffer),
        (process.stderr, sys.stderr.buffer),
    ]
    for pipe, out in outputs:
        if pipe is not None:
            copies.append(threading.Thread(target=shutil.copyfileobj, args=(pipe, out)))
    for copy in copies:
        copy.start()
    code = process.wait()
    for copy in copies:
        if not copy.daemon:
            copy.join()
    sys.stdout.flush()
    return code


def main(argv: Sequence[str]) -> int:
    return run(load_config(argv[0]), argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
