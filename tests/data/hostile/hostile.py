"""A hostile wheel's module (tests/test_sandbox.py): on import it tries every escape smoke's sandbox must stop.

Each attempt that succeeds is an escape; the import then fails naming them, so smoke's report says which.
When every attempt fails the import succeeds: smoke reports "passed" and the module as imported.
Parameters come from the environment (not secrets, so the sandbox passes them through).
"""

import os
import socket
import time

# Under wine (a Windows runtime) the host's / is drive Z:.
ROOT = "Z:/" if os.name == "nt" else "/"
REPO = ROOT + os.environ.get("HOSTILE_REPO", "/nonexistent").lstrip("/")
PORT = int(os.environ.get("HOSTILE_PORT", "9"))
escapes = []
attempts = []


def attempt(name):
    def run(function):
        attempts.append(name)
        try:
            if function():
                escapes.append(name)
        except Exception:  # refused, however it is refused: what the sandbox is for
            pass
        return function

    return run


@attempt("read /etc/shadow")
def read_shadow():
    with open(ROOT + "etc/shadow") as handle:
        return "root:" in handle.read()


@attempt("write to /root")
def write_root():
    with open(ROOT + "root/rewheel-hostile-escape", "w") as handle:
        handle.write("escaped\n")
    return True


@attempt("write to the repository")
def write_repo():
    with open(os.path.join(REPO, "rewheel-hostile-escape"), "w") as handle:
        handle.write("escaped\n")
    return True


@attempt("connect to 127.0.0.1")
def connect():
    socket.create_connection(("127.0.0.1", PORT), timeout=5).close()
    return True


@attempt("read credentials from the environment")
def credentials():
    return any(os.environ.get(name) for name in ("REWHEEL_INDEX_PASSWORD", "TWINE_PASSWORD"))


@attempt("fork 2,000 processes")
def fork_bomb():
    if not hasattr(os, "fork"):
        return False  # Windows: no fork
    for _ in range(2000):
        pid = os.fork()
        if pid == 0:
            try:
                time.sleep(5)
            finally:
                os._exit(0)
    return True


@attempt("allocate 8 GB")
def allocate():
    block = bytearray(8 << 30)
    return len(block) == 8 << 30


@attempt("write 4 GB")
def write_disk():
    written = 0
    chunk = bytes(64 << 20)
    try:
        for index in range(64):  # files of 192 MiB, in the scratch space a sandboxed run has
            with open(f"{ROOT}tmp/rewheel-hostile-{index}", "wb") as handle:
                for _ in range(3):
                    handle.write(chunk)
                    written += len(chunk)
            if written >= 4 << 30:
                return True
    finally:
        for index in range(64):
            if os.path.exists(f"{ROOT}tmp/rewheel-hostile-{index}"):
                os.unlink(f"{ROOT}tmp/rewheel-hostile-{index}")
    return False


def write_file(path):
    with open(path, "wb") as handle:
        chunk = bytes(64 << 20)
        for _ in range(64):
            handle.write(chunk)
    return True


@attempt("write one 4 GB file in /tmp")
def write_one_file():
    return write_file(ROOT + "tmp/rewheel-hostile-big")


@attempt("write one 4 GB file beside the site folder")
def write_beside():
    return write_file("big")


if escapes:
    raise ImportError("escaped: " + "; ".join(escapes))
CONTAINED = list(attempts)
