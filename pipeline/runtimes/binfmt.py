"""binfmt_misc registrations of qemu-user, so that programs a foreign-architecture runtime starts run too.

A musl aarch64 CPython runs here as `qemu-aarch64 -L SYSROOT python`. qemu maps the guest's file opens into
SYSROOT, but a program the guest starts goes through the host kernel's execve: pip's musl probe runs the
interpreter's PT_INTERP (/lib/ld-musl-aarch64.so.1) to read musl's version, pip's build isolation and many
tools run sys.executable. An Alpine arm64 machine runs both natively. Here the kernel runs them through
binfmt_misc: an entry matching aarch64 ELF files hands them to qemu-aarch64, which honours QEMU_LD_PREFIX
(the wrapper exports the sysroot) as it honours -L. The loader's path itself is provided by the runtime's
wrapper in a private mount namespace (pipeline/runtimes/musl_cpython.py), never in the host's /lib.

The entry is rewheel's own (`rewheel-qemu-<arch>`), registered with the F flag (the kernel opens qemu once,
at registration) and P (the guest sees its own argv[0], as on real hardware). It is not Debian's
`qemu-<arch>` entry (qemu-user-binfmt / binfmt-support): that one is what the cibuildwheel backend looks for
before it runs arm64 containers, and registering it here would change that backend's choices behind its back.

Registering needs root and a kernel with binfmt_misc; /proc/sys/fs/binfmt_misc is mounted first when it is
not (a marker under /run records that rewheel mounted it, so scripts/rehearse-fresh-machine can undo exactly
what rewheel did: `undo()`).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

from pipeline.errors import RewheelError

BINFMT_MISC = Path("/proc/sys/fs/binfmt_misc")
# Lives as long as the mount itself (both vanish at reboot): present only if rewheel mounted binfmt_misc.
MOUNTED_MARKER = Path("/run/rewheel-mounted-binfmt_misc")
ENTRY_PREFIX = "rewheel-qemu-"

# The ELF header fields that identify an executable or shared object of one architecture: e_ident (its class,
# 64-bit or 32-bit for armv7l; little-endian data, version 1; the OS ABI and padding are masked out), e_type
# (ET_EXEC=2 or ET_DYN=3: the mask drops the low bit, so the musl loader, a shared object, matches too) and
# e_machine.
ELF_MACHINES = {"aarch64": 183, "armv7l": 40}  # EM_AARCH64, EM_ARM
ELF_CLASSES = {"armv7l": 1}  # ELFCLASS32; every other architecture here is ELFCLASS64 (2)


class BinfmtUnavailable(RewheelError):
    """This machine cannot register qemu with binfmt_misc; the message names what is missing."""


def entry_name(arch: str) -> str:
    return ENTRY_PREFIX + arch


def _escaped(data: bytes) -> str:
    return "".join(f"\\x{byte:02x}" for byte in data)


def registration(arch: str, qemu: str) -> str:
    """The line written to binfmt_misc's register file (`:name:type:offset:magic:mask:interpreter:flags`)."""
    machine = ELF_MACHINES[arch]
    ident = bytes([0x7F, ord("E"), ord("L"), ord("F"), ELF_CLASSES.get(arch, 2), 1, 1, 0]) + bytes(8)
    magic = ident + bytes([2, 0]) + machine.to_bytes(2, "little")
    mask = bytes([0xFF] * 7 + [0x00] + [0xFF] * 8) + bytes([0xFE, 0xFF, 0xFF, 0xFF])
    return f":{entry_name(arch)}:M::{_escaped(magic)}:{_escaped(mask)}:{qemu}:FP"


def registered(arch: str) -> dict[str, str] | None:
    """rewheel's entry for `arch` as the kernel reports it ({"state", "interpreter", "flags"}), or None."""
    try:
        text = (BINFMT_MISC / entry_name(arch)).read_text(encoding="utf-8")
    except OSError:
        return None
    lines = text.splitlines()
    fields = dict(line.split(" ", 1) for line in lines[1:] if " " in line)
    return {
        "state": lines[0].strip() if lines else "",
        "interpreter": fields.get("interpreter", ""),
        "flags": fields.get("flags:", ""),
    }


def _mounted() -> bool:
    return (BINFMT_MISC / "register").exists()


def _kernel_has_binfmt_misc() -> bool:
    try:
        return any(
            line.split()[-1] == "binfmt_misc" for line in Path("/proc/filesystems").read_text().splitlines()
        )
    except OSError:
        return False


def ensure_registered(arch: str, qemu: str) -> None:
    """Make the kernel run `arch` ELF files with `qemu` (idempotent); raise BinfmtUnavailable naming what is
    missing."""
    if arch not in ELF_MACHINES:
        raise BinfmtUnavailable(f"no binfmt_misc pattern for {arch} ELF files")
    current = registered(arch)
    if current and current["state"] == "enabled" and current["interpreter"] == qemu:
        return
    if os.geteuid() != 0:
        raise BinfmtUnavailable(f"registering qemu-{arch} with binfmt_misc needs root")
    if not _mounted():
        if not _kernel_has_binfmt_misc():
            raise BinfmtUnavailable("this kernel has no binfmt_misc file system (/proc/filesystems)")
        mount = subprocess.run(
            ["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_MISC)], capture_output=True, text=True
        )
        if mount.returncode != 0 and not _mounted():
            raise BinfmtUnavailable(f"mounting binfmt_misc on {BINFMT_MISC} failed: {mount.stderr.strip()}")
        if mount.returncode == 0:
            MOUNTED_MARKER.write_text(f"{BINFMT_MISC}\n", encoding="utf-8")
    if current:  # disabled, or naming a qemu that moved: replace it
        _remove(entry_name(arch))
    try:
        (BINFMT_MISC / "register").write_text(registration(arch, qemu), encoding="utf-8")
    except FileExistsError:
        pass  # a parallel process registered it first
    except OSError as exc:
        raise BinfmtUnavailable(f"binfmt_misc refused the qemu-{arch} registration: {exc}") from None
    now = registered(arch)
    if not now or now["state"] != "enabled" or now["interpreter"] != qemu:
        raise BinfmtUnavailable(f"binfmt_misc does not report {entry_name(arch)} enabled with {qemu}")


def _remove(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):  # already gone
        (BINFMT_MISC / name).write_text("-1", encoding="utf-8")


def undo(dry_run: bool = False) -> list[str]:
    """Remove every rewheel registration, and unmount binfmt_misc if rewheel mounted it (and no other entry is
    left); return what was (or, with dry_run, would be) done."""
    done = []
    entries = sorted(BINFMT_MISC.glob(ENTRY_PREFIX + "*")) if _mounted() else []
    for entry in entries:
        if not dry_run:
            _remove(entry.name)
        done.append(f"remove binfmt_misc entry {entry.name}")
    if MOUNTED_MARKER.exists():
        if _mounted():
            others = [p.name for p in BINFMT_MISC.iterdir() if p.name not in ("register", "status")]
            if dry_run:
                others = [name for name in others if not name.startswith(ENTRY_PREFIX)]
            if not others:
                if not dry_run:
                    subprocess.run(["umount", str(BINFMT_MISC)], check=True)
                done.append(f"unmount {BINFMT_MISC} (rewheel mounted it)")
        if not dry_run:
            MOUNTED_MARKER.unlink()
    return done
