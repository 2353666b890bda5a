"""Run inside a target's interpreter by `rewheel smoke`: import each module, report each outcome as one JSON line.

    python -S -s smoke_importer.py SITE_DIR EXTENSIONS_JSON MODULE...

SITE_DIR is the unpacked wheel; EXTENSIONS_JSON maps a module name to its extension file (relative to
SITE_DIR). It runs on every target interpreter (musl CPythons, Windows CPython under wine, CPython under
qemu-user; the oldest is 3.10): standard library only, and nothing of `pipeline`, which is not there.
smoke.py copies this file next to the site folder, where the sandboxed (and the Windows) interpreter sees it.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.util
import json
import os
import site
import sys
import traceback


def add_site(site_dir: str) -> None:
    """A site dir, as an installer's target is: its .pth files run (pywin32 adds its DLL folders that way). It
    goes first on sys.path, so nothing the runtime itself carries shadows the wheel."""
    before = list(sys.path)
    site.addsitedir(site_dir)
    sys.path[:] = [p for p in sys.path if p not in before] + before


def load(name: str, site_dir: str, extension_files: dict[str, str]) -> None:
    path = extension_files.get(name)
    stem = name.rpartition(".")[2]
    names = {stem + suffix for suffix in importlib.machinery.EXTENSION_SUFFIXES}
    if path and os.path.basename(path) not in names:
        # A suffix this interpreter does not look for (a linux-gnu .so on musl): hand the file to the
        # dynamic loader anyway, so the report carries the loader's verdict, not just "no module".
        parent = name.rpartition(".")[0]
        if parent:
            # its __init__ may import this very extension by suffix; the loader's verdict still matters
            with contextlib.suppress(ImportError):
                importlib.import_module(parent)
        loader = importlib.machinery.ExtensionFileLoader(name, os.path.join(site_dir, path))
        spec = importlib.util.spec_from_file_location(name, loader.path, loader=loader)
        assert spec is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        loader.exec_module(module)
        return
    importlib.import_module(name)


def main(argv: list[str]) -> int:
    """argv: SITE_DIR, EXTENSIONS_JSON, MODULE... (a module's failure is reported, not the exit status)."""
    site_dir, extension_files, modules = argv[0], json.loads(argv[1]), argv[2:]
    add_site(site_dir)
    for name in modules:
        try:
            load(name, site_dir, extension_files)
            print(json.dumps({"module": name, "ok": True}), flush=True)
        except BaseException as exc:
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            print(json.dumps({"module": name, "ok": False, "error": detail}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
