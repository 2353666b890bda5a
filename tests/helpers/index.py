"""Helpers shared by the index tests: real servers on 127.0.0.1, fresh venvs, pinned wheels, verify records.
Their own tests are in tests/index/test_index_support.py."""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conftest import need_toolset
from pipeline.util import sha256_file

SIX = ("six", "1.16.0", "six-1.16.0-py2.py3-none-any.whl",
       "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254")  # fmt: skip
MARKUPSAFE = (
    "MarkupSafe",
    "2.1.5",
    "MarkupSafe-2.1.5-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "b91c037585eba9095565a3556f611e3cbfaa42ca1e865f7b8015fe5c7336d5a5",
)
STARTUP_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def verify_record(path: Path, wheels: list[Path], ok: bool = True) -> Path:
    """A `rewheel verify --json` record for wheels (used where the test is about the index, not verify)."""
    results = [
        {"wheel": w.name, "target": "any", "ok": ok, "findings": [], "sha256": _sha256(w)} for w in wheels
    ]
    path.write_text(json.dumps({"results": results}), encoding="utf-8")
    return path


def _sha256(path: Path) -> str | None:
    """The file's sha256 as verify records it (None for a name with no file: a test of the name alone)."""
    try:
        return sha256_file(path)
    except OSError:
        return None


class Server:
    """A server subprocess whose output lines are collected (so its pipes never fill) for assertions."""

    def __init__(self, command: list[str], ready: re.Pattern[str], cwd: Path | None = None) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd, bufsize=1
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + STARTUP_SECONDS
        self.match: re.Match[str] | None = None
        while self.match is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.process.poll() is not None:
                self.stop()
                raise AssertionError(f"server did not start: {command}\n" + "\n".join(self.lines))
            readable, _, _ = select.select([self.process.stdout], [], [], remaining)
            if readable:
                line = self.process.stdout.readline()
                self.lines.append(line.rstrip("\n"))
                self.match = ready.search(line)
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def log(self) -> str:
        time.sleep(0.2)  # the access log line is written after the response
        return "\n".join(self.lines)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@contextmanager
def rewheel_serve(root: Path) -> Iterator[tuple[Server, str]]:
    server = Server(
        [sys.executable, "-m", "pipeline", "serve", str(root), "--port", "0"],
        re.compile(r"at (http://127\.0\.0\.1:\d+)/simple/"),
    )
    try:
        assert server.match
        yield server, server.match.group(1)
    finally:
        server.stop()


@contextmanager
def python_http_server(root: Path) -> Iterator[tuple[Server, str]]:
    server = Server(
        [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", str(root)],
        re.compile(r"port (\d+)"),
    )
    try:
        assert server.match
        yield server, f"http://127.0.0.1:{server.match.group(1)}"
    finally:
        server.stop()


def wait_http(url: str, timeout: float = STARTUP_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def fresh_venv(folder: Path) -> Path:
    """A new venv without pip (fast); pip is run from outside with --python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    return folder / "bin" / "python"


def pip_into(python: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """pip (the test interpreter's) installing into `python`'s environment, ignoring the user's pip config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    command = [
        sys.executable, "-m", "pip", "--python", str(python), "--isolated", "--no-cache-dir",
        "--disable-pip-version-check", "-v", *args,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)


def nginx_serve(root: Path, runtime: Path) -> Iterator[str]:
    need_toolset("nginx")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    config = runtime / "nginx.conf"
    made = subprocess.run(
        [sys.executable, "-m", "pipeline", "index", "nginx-config", str(root), "--listen", f"127.0.0.1:{port}",
         "--standalone", str(runtime)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    config.write_text(made.stdout)
    checked = subprocess.run(
        [nginx, "-t", "-c", str(config), "-e", str(runtime / "error.log")], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen(
        [nginx, "-c", str(config), "-e", str(runtime / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/simple/")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()  # nginx's fast shutdown
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
