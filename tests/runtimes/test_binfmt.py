"""Programs the emulated musl aarch64 CPython starts run too (pipeline/runtimes/binfmt.py and the runtime's wrapper).

pip's musl probe execs the interpreter's PT_INTERP, /lib/ld-musl-aarch64.so.1; pip's build isolation and many
tools run sys.executable. Both go through the host kernel, not qemu: rewheel registers qemu-aarch64 with
binfmt_misc and the wrapper shows musl's loader at its own path in a private mount namespace. These tests use
the real runtime, the real loader from Debian's musl:arm64 and the real kernel registration.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import ensure_runtime, unavailable

RUNTIME = "musl-cpython-3.11-aarch64"


def _matches(path: Path, registration: str) -> bool:
    """Apply a binfmt_misc registration's magic and mask to a file's first bytes, as the kernel does."""
    _, _, _, _, magic, mask, _, _ = registration.split(":")
    magic_bytes = bytes.fromhex(magic.replace("\\x", ""))
    mask_bytes = bytes.fromhex(mask.replace("\\x", ""))
    head = path.read_bytes()[: len(magic_bytes)]
    return bytes(h & m for h, m in zip(head, mask_bytes, strict=True)) == bytes(
        g & m for g, m in zip(magic_bytes, mask_bytes, strict=True)
    )


@pytest.fixture(scope="module")
def aarch64(runtime_env):  # type: ignore[no-untyped-def]
    return ensure_runtime(RUNTIME)


def test_the_pattern_matches_aarch64_programs_and_the_loader_only(aarch64, runtime_env) -> None:  # type: ignore[no-untyped-def]
    from pipeline.runtimes.binfmt import registration

    line = registration("aarch64", "/usr/bin/qemu-aarch64")
    assert line.startswith(":rewheel-qemu-aarch64:M::") and line.endswith(":/usr/bin/qemu-aarch64:FP")
    root = aarch64.root()
    assert _matches(root / "bin" / "python3.11", line)  # ET_EXEC/ET_DYN program
    assert _matches(
        (root / "sysroot" / "lib" / "ld-musl-aarch64.so.1").resolve(), line
    )  # the loader (ET_DYN)
    x86_64 = ensure_runtime("musl-cpython-3.11-x86_64")
    assert not _matches(x86_64.root() / "bin" / "python3.11", line)
    assert not _matches(Path("/bin/sh").resolve(), line)


def test_children_of_the_emulated_interpreter_run(aarch64, runtime_env) -> None:  # type: ignore[no-untyped-def]
    from pipeline.runtimes.binfmt import registered, undo

    problem = aarch64.child_exec_problem()
    if problem:
        unavailable(f"{RUNTIME}: {problem}")
    entry = registered("aarch64")
    assert entry and entry["state"] == "enabled" and set(entry["flags"]) == {"F", "P"}
    assert entry["interpreter"].endswith("qemu-aarch64")
    # pip's probe (packaging._musllinux, as vendored by pip and as a library): the real loader's version.
    probe = """
import os, subprocess, sys
from packaging._musllinux import _get_musl_version
from packaging import tags
print(_get_musl_version(sys.executable))
print(" ".join(str(t) for t in tags.sys_tags() if t.interpreter == "cp311" and t.abi == "cp311"))
child = subprocess.run(["python-on-arm64", "-c", "import platform, sys; print(platform.machine(), sys.orig_argv[0])"],
                       executable=sys.executable, capture_output=True, text=True, check=True)
print(child.stdout.strip())
"""
    packaging_dir = Path(__import__("packaging").__file__).parent.parent
    result = subprocess.run(
        [str(aarch64.python()), "-c", probe],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(packaging_dir)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    version, platform_tags, child = result.stdout.splitlines()
    assert version.startswith("_MuslVersion(major=1, minor=2")
    # musl's tags, newest first, and none of glibc's (packaging 26 also lists the plain linux_aarch64 tag first).
    musl_tags = [t for t in platform_tags.split() if "musllinux" in t]
    assert musl_tags[0] == "cp311-cp311-musllinux_1_2_aarch64" and "manylinux" not in platform_tags
    # The child is aarch64 too and sees its own argv[0] (binfmt_misc P flag), as on an arm64 machine.
    assert child == "aarch64 python-on-arm64"
    # Nothing was written into the host's /lib: the loader lives in the wrapper's mount namespace only.
    assert not Path("/lib/ld-musl-aarch64.so.1").exists()
    # The fresh-machine rehearsal finds the registration to undo (dry run: other tests may be using it).
    assert "remove binfmt_misc entry rewheel-qemu-aarch64" in undo(dry_run=True)
