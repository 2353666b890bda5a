#!/usr/bin/env python3
"""The zig compiler wrapper: what a cross build runs as cc, c++, ar, ranlib, strip (and dlltool for Windows).

toolchain.write_toolchain copies this file into a toolchain's bin folder once per tool name, with the build
Python on its #! line, and writes the target's facts (zig, triple, flags, ...) as JSON next to the copies
(CONFIG_NAME), as pyodide-build's pywasmcross does with its symlinks. The name a copy is run by is its mode.
Copies rather than symlinks: a build system that resolves its compiler's real path (CMake, meson) would find
one name for every tool.

It runs for every compiler call of a build, inside the build sandbox: standard library only, nothing of
`pipeline` (which may not be importable there, and would cost start-up time each call), and the #! line runs
Python with -I -S (no site-packages scan, no PYTHON* variables from the build's environment).
See toolchain.py's docstring for why each rewrite exists.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

CONFIG_NAME = "rewheel-zig-toolchain.json"
MODES = ("cc", "c++", "ar", "ranlib", "strip", "dlltool")
HOST_LIB_DIRS = ("/usr/lib", "/lib", "/usr/local/lib", "/usr/lib64", "/lib64")
CXX_SOURCES = (".cpp", ".cc", ".cxx", ".c++")
# Mangled C++ runtime names an object compiled from C++ refers to (new/delete, exceptions, std::).
CXX_MARKERS = (b"__gxx_personality_v0", b"__cxa_", b"_Znwm", b"_ZdlPv", b"_ZNSt", b"_ZSt")


class HostLibraryFolder(Exception):
    """A -L to a host library folder in a cross build (refused with one line, exit status 2)."""


class Compile:
    """What one cc / c++ call becomes: the zig command and what to do after it."""

    __slots__ = ("command", "linking_shared", "output")

    def __init__(self, command: list[str], linking_shared: bool, output: str | None) -> None:
        self.command = command
        self.linking_shared = linking_shared
        self.output = output


def load_config(program: str) -> dict:
    """The toolchain's facts, from the JSON file beside the entry point `program`."""
    path = os.path.join(os.path.dirname(os.path.abspath(program)), CONFIG_NAME)
    with open(path, encoding="utf-8") as handle:
        config: dict = json.load(handle)
    return config


def host_lib_dir(folder: str) -> bool:
    return any(folder == d or folder.startswith(d + "/") for d in HOST_LIB_DIRS)


def check_library_folders(config: dict, args: list[str]) -> None:
    """Refuse a host library folder: it comes from a host *-config script or a setup.py guessing, and would
    link host libraries into a target binary."""
    previous = None
    for arg in args:
        folder = arg[2:] if arg.startswith("-L") and len(arg) > 2 else (arg if previous == "-L" else None)
        if folder is not None and host_lib_dir(folder):
            raise HostLibraryFolder(
                f"rewheel: error: host library folder -L{folder} in a cross build for {config['target']}: the "
                "host's libraries cannot link into a target binary (a host *-config script or setup.py put it "
                "there; give the library as a recipe [[native]] entry)"
            )
        previous = arg


def has_cxx_objects(arguments: list[str]) -> bool:
    for arg in arguments:
        if arg.endswith((".o", ".a")) and os.path.isfile(arg):
            with open(arg, "rb") as handle:
                data = handle.read()
            if any(marker in data for marker in CXX_MARKERS):
                return True
    return False


def compiler_command(config: dict, mode: str, args: list[str], environ: dict[str, str]) -> Compile:
    """The zig command for a cc / c++ call with `args` (raises HostLibraryFolder)."""
    check_library_folders(config, args)
    host_includes: list[str] = config["host_includes"]
    target_include: str = config["target_include"]
    rewritten: list[str] = []
    for arg in args:
        # The target's copy of the Python headers replaces the host's (pyconfig.h differs per architecture).
        if target_include:
            for host in host_includes:
                if arg == "-I" + host:
                    arg = "-I" + target_include
                elif arg == host and rewritten and rewritten[-1] == "-I":
                    arg = target_include
        # -Wl,-rpath to the host Python's lib dir leaks from sysconfig into some builds; meaningless on the
        # target.
        if arg.startswith("-Wl,-rpath,/") and any(
            arg.startswith("-Wl,-rpath," + h.rsplit("/include", 1)[0]) for h in host_includes
        ):
            continue
        if arg in config["dropped_flags"]:
            continue
        rewritten.append(arg)
    # clang 16's new hard errors back to warnings (toolchain.LENIENT_C_FLAGS), unless the recipe wants them
    # strict.
    lenient = [] if environ.get(config["strict_variable"]) == "1" else config["lenient_flags"]
    rewritten = [*config["compile_flags"], *lenient, *rewritten]

    linking_shared = "-shared" in rewritten and "-c" not in rewritten
    if linking_shared and "-s" not in rewritten:
        rewritten.append("-s")  # zig keeps debug info otherwise: megabytes per extension
    if linking_shared:
        rewritten += config["link_flags"]

    if mode == "cc" and "-c" in rewritten and any(a.lower().endswith(CXX_SOURCES) for a in rewritten):
        mode = "c++"  # zig cc compiles .cpp as C++ but without libc++'s headers
    elif (
        mode == "cc"
        and "-c" not in rewritten
        and "-nostdlib++" not in rewritten
        and has_cxx_objects(rewritten)
    ):
        mode = "c++"  # a link through cc of C++ objects: zig c++ links zig's libc++ in
    output = None
    for i, arg in enumerate(rewritten):
        if arg == "-o" and i + 1 < len(rewritten):
            output = rewritten[i + 1]
        elif arg.startswith("-o") and len(arg) > 2:
            output = arg[2:]
    return Compile([config["zig"], mode, "-target", config["triple"], *rewritten], linking_shared, output)


def strip(zig: str, args: list[str]) -> int:
    # zig has no strip command; objcopy --strip-all does the same where zig implements it. Never in place:
    # a failing `zig objcopy X X` ("error: unimplemented" for some shared objects) leaves X empty (CMake's
    # install/strip step emptied spglib's libraries that way). Shared objects the wrapper linked are
    # stripped already (-s), so a file objcopy cannot handle is left as it is.
    for path in [a for a in args if not a.startswith("-")]:
        stripped = path + ".rewheel-strip"
        done = subprocess.call([zig, "objcopy", "--strip-all", path, stripped], stderr=subprocess.DEVNULL)
        if done == 0 and os.path.getsize(stripped) > 0:
            os.chmod(stripped, os.stat(path).st_mode)
            os.replace(stripped, path)
        elif os.path.exists(stripped):
            os.remove(stripped)
    return 0


def compile_or_link(config: dict, mode: str, args: list[str]) -> int:
    try:
        job = compiler_command(config, mode, args, dict(os.environ))
    except HostLibraryFolder as refusal:
        sys.stderr.write(f"{refusal}\n")
        return 2
    rewritten = job.command[4:]
    windows = config["windows"]
    out_dir = os.path.dirname(job.output or "") or "."
    libs_before = (
        {n for n in os.listdir(out_dir) if n.endswith(".lib")}
        if windows and os.path.isdir(out_dir)
        else set()
    )
    code = subprocess.call(job.command)
    if (
        windows
        and code == 0
        and job.linking_shared
        and job.output
        and not any("--out-implib" in a for a in rewritten)
    ):
        # zig writes an import library (<stem>.lib) beside every DLL; nobody asked for it, and a build would
        # package it next to the .pyd.
        for name in set(os.listdir(out_dir)) - libs_before:
            if name.endswith(".lib"):
                os.unlink(os.path.join(out_dir, name))
    soname = config["musl_soname"]
    if code != 0 or not job.linking_shared or not soname:
        return code
    if job.output and os.path.isfile(job.output):
        # zig's musl stub is libc.so; the loader on a musl system is libc.musl-<arch>.so.1 (what auditwheel
        # wants).
        patchelf = config["patchelf"]
        needed = subprocess.run(
            [patchelf, "--print-needed", job.output], capture_output=True, text=True
        ).stdout.split()
        if "libc.so" in needed:
            return subprocess.call([patchelf, "--replace-needed", "libc.so", soname, job.output])
        if soname not in needed:
            # An extension that calls libc only through another library of the wheel (spglib's _spglib
            # through libsymspg) gets no libc entry from zig; auditwheel tells musl from glibc by that entry.
            return subprocess.call([patchelf, "--add-needed", soname, job.output])
    return 0


def main(argv: list[str]) -> int:
    """argv as a program gets it: argv[0], the entry point's path, names the mode and finds the config."""
    mode = os.path.basename(argv[0])
    if mode not in MODES:
        sys.stderr.write(f"rewheel: error: the zig wrapper runs as one of {', '.join(MODES)}, not {mode!r}\n")
        return 2
    config = load_config(argv[0])
    args = argv[1:]
    if mode in ("ar", "ranlib", "dlltool"):
        os.execv(config["zig"], [config["zig"], mode, *args])
    if mode == "strip":
        return strip(config["zig"], args)
    return compile_or_link(config, mode, args)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
