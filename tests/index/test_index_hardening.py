"""The index against hostile or careless input: no replaced file (identity by normalised name, version and
tags), no name that is a path, no traceback, no first publish that leaves an unreadable index, and
`rewheel serve` serving only regular files inside the tree, with a real backlog, a bounded pool and idle
timeouts (a bounded load test on 127.0.0.1)."""

from __future__ import annotations

import io
import json
import os
import socket
import threading
import zipfile
from pathlib import Path
from typing import Any

import pytest

from helpers.index import rewheel_serve, verify_record
from helpers.synthetic import make_wheel, wheel_bytes
from pipeline.index import publish
from pipeline.index.server import BoundedHTTPServer, make_server
from pipeline.index.static import check_index


def _one_line_exit_2(result: tuple[int, str, str]) -> str:
    code, _, err = result
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rewheel: error: "), err
    assert "Traceback" not in err
    return lines[0]


def _wheel_named(folder: Path, filename: str, name: str, version: str, payload: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    path.write_bytes(wheel_bytes(name, version, payload=payload))
    return path


def _publish_cli(run_cli, wheel: Path, root: Path, tmp_path: Path) -> tuple[int, str, str]:
    record = verify_record(tmp_path / f"{wheel.name}.json", [wheel])
    return run_cli("publish", str(wheel), "--to", str(root), "--verified-by", str(record))


@pytest.mark.parametrize(
    ("filename", "name", "version"),
    [
        ("demo-1.0.0-py3-none-any.whl", "demo", "1.0.0"),  # the same PEP 440 version
        ("DEMO-1.0-py3-none-any.whl", "DEMO", "1.0"),  # the same PEP 503 name
        ("Demo-1.0.0.0-py3-none-any.whl", "Demo", "1.0.0.0"),
    ],
)
def test_a_file_pip_takes_for_a_published_one_is_refused(
    tmp_path: Path, run_cli, filename: str, name: str, version: str
) -> None:
    root = tmp_path / "index"
    first = _wheel_named(tmp_path / "one", "demo-1.0-py3-none-any.whl", "demo", "1.0")
    assert _publish_cli(run_cli, first, root, tmp_path)[0] == 0
    other = _wheel_named(tmp_path / "two", filename, name, version, payload="# other bytes\n")
    line = _one_line_exit_2(_publish_cli(run_cli, other, root, tmp_path))
    assert first.name in line and "immutable" in line
    assert [p.name for p in (root / "files/demo").glob("*.whl")] == [first.name]
    assert [f["filename"] for f in json.loads((root / "simple/demo/index.json").read_text())["files"]] == [
        first.name
    ]
    # Another build tag or other tags are other files to pip, and welcome.
    rebuilt = _wheel_named(tmp_path / "three", "demo-1.0-1-py3-none-any.whl", "demo", "1.0", payload="#\n")
    assert _publish_cli(run_cli, rebuilt, root, tmp_path)[0] == 0


def test_index_check_reports_two_names_for_one_file(tmp_path: Path, run_cli) -> None:
    """Files copied in by hand behind rewheel's back: `index rebuild` lists them, `index check` objects."""
    root = tmp_path / "index"
    first = _wheel_named(tmp_path / "a", "demo-1.0-py3-none-any.whl", "demo", "1.0")
    publish([first], str(root), verified={first: True})
    (root / "files/demo/DEMO-1.0.0-py3-none-any.whl").write_bytes(wheel_bytes("DEMO", "1.0.0", payload="#\n"))
    assert run_cli("index", "rebuild", str(root))[0] == 0
    code, out, _ = run_cli("index", "check", str(root))
    assert code == 1 and "same file to pip" in out


def test_two_names_for_one_file_in_one_publish_are_refused(tmp_path: Path, run_cli) -> None:
    one = _wheel_named(tmp_path / "a", "demo-1.0-py3-none-any.whl", "demo", "1.0")
    two = _wheel_named(tmp_path / "b", "demo-1.0.0-py3-none-any.whl", "demo", "1.0.0", payload="#\n")
    record = verify_record(tmp_path / "r.json", [one, two])
    result = run_cli(
        "publish", str(one), str(two), "--to", str(tmp_path / "index"), "--verified-by", str(record)
    )
    assert "same file" in _one_line_exit_2(result)
    assert not (tmp_path / "index/files").exists()


def test_metadata_that_contradicts_the_file_name_is_refused(tmp_path: Path, run_cli) -> None:
    liar = _wheel_named(tmp_path, "demo-1.0-py3-none-any.whl", "demo", "2.0")
    assert "METADATA Version" in _one_line_exit_2(_publish_cli(run_cli, liar, tmp_path / "index", tmp_path))
    assert not (tmp_path / "index/files").exists()


@pytest.mark.parametrize("project", ["..", "...", "-", "_"])
def test_project_names_that_are_paths_are_refused(tmp_path: Path, run_cli, project: str) -> None:
    wheel = _wheel_named(tmp_path / "w", f"{project}-1.0-py3-none-any.whl", "demo", "1.0")
    line = _one_line_exit_2(_publish_cli(run_cli, wheel, tmp_path / "sub" / "index", tmp_path))
    assert "not a valid project name" in line or "not a valid wheel file name" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["w", f"{wheel.name}.json"])


def test_a_kill_during_the_very_first_publish_leaves_a_readable_index(tmp_path: Path) -> None:
    """The publisher dies right after its first file lands (its progress line is the last thing it runs): the
    index it leaves must pass `index check`, and the next publish lists the file."""
    from pipeline.log import log

    class Killed(BaseException):
        pass

    class DieAfterFirstFile(io.StringIO):
        def write(self, text: str) -> int:
            if text.startswith("index: added "):
                raise Killed
            return super().write(text)

    root = tmp_path / "index"
    wheel = make_wheel(tmp_path / "w", "demo", "1.0")
    log.configure(stream=DieAfterFirstFile(), tty=False)
    try:
        with pytest.raises(Killed):
            publish([wheel], str(root), verified={wheel: True})
    finally:
        log.configure()
    assert (root / "files/demo" / wheel.name).is_file()
    assert check_index(root) == []
    publish([wheel], str(root), verified={wheel: True})
    assert [f["filename"] for f in json.loads((root / "simple/demo/index.json").read_text())["files"]] == [
        wheel.name
    ]
    assert check_index(root) == []


def _corrupt_metadata_wheel(folder: Path) -> Path:
    """A wheel whose METADATA member fails its CRC (stored, one byte changed after zipping)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("demo/__init__.py", "")
        archive.writestr("demo-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n")
        archive.writestr("demo-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nTag: py3-none-any\n")
    data = path.read_bytes()
    path.write_bytes(data.replace(b"Name: demo", b"Name: dema", 1))
    return path


def test_tracebacks_of_the_hostile_input_run_are_one_line_and_exit_2(tmp_path: Path, run_cli) -> None:
    good = make_wheel(tmp_path / "w", "demo", "1.0")
    record = verify_record(tmp_path / "ok.json", [good])
    not_a_wheel = tmp_path / "foo.whl"
    not_a_wheel.write_bytes(good.read_bytes())
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    corrupt = _corrupt_metadata_wheel(tmp_path / "corrupt")
    corrupt_record = verify_record(tmp_path / "corrupt.json", [corrupt])
    cases = [
        ("publish", str(not_a_wheel), "--to", str(tmp_path / "i1")),  # InvalidWheelFilename, verify path
        ("publish", str(not_a_wheel), "--to", str(tmp_path / "i1"), "--verified-by", str(record)),
        ("publish", str(good), "--to", str(a_file), "--verified-by", str(record)),  # NotADirectoryError
        ("publish", str(good), "--to", "/proc/1/nope", "--verified-by", str(record)),  # FileNotFoundError
        ("publish", str(corrupt), "--to", str(tmp_path / "i2"), "--verified-by", str(corrupt_record)),
    ]
    for args in cases:
        _one_line_exit_2(run_cli(*args))
    assert a_file.read_text() == "x"
    for args in (
        ("yank", good.name, "--index", "/proc/1/nope"),
        ("index", "rebuild", "/proc/self"),
    ):
        _one_line_exit_2(run_cli(*args))

    # index rebuild meeting a wheel whose METADATA is corrupt (BadZipFile)
    root = tmp_path / "index"
    publish([good], str(root), verified={good: True})
    (root / "files/demo" / good.name).write_bytes(corrupt.read_bytes())
    assert "METADATA" in _one_line_exit_2(run_cli("index", "rebuild", str(root)))

    # index check on a page that is not UTF-8
    clean = tmp_path / "clean"
    publish([good], str(clean), verified={good: True})
    (clean / "simple/demo/index.html").write_bytes(b"<html>\xff\xfe</html>")
    assert "UTF-8" in _one_line_exit_2(run_cli("index", "check", str(clean)))
    (clean / "simple/index.json").write_bytes("\udcff".encode("utf-8", "surrogatepass"))
    assert "UTF-8" in _one_line_exit_2(run_cli("index", "check", str(clean)))


def test_a_damaged_project_page_is_one_line_and_rebuild_repairs_it(tmp_path: Path, run_cli) -> None:
    root = tmp_path / "index"
    first = make_wheel(tmp_path / "a", "demo", "1.0")
    publish([first], str(root), verified={first: True})
    (root / "simple/demo/index.json").write_text('{"files": [{"filename": 3}]}')
    second = make_wheel(tmp_path / "b", "demo", "1.1")
    assert "index rebuild" in _one_line_exit_2(_publish_cli(run_cli, second, root, tmp_path))
    assert run_cli("index", "rebuild", str(root))[0] == 0
    assert check_index(root) == []


# ---- rewheel serve


def _raw_request(base: str, target: bytes) -> bytes:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(b"GET " + target + b" HTTP/1.0\r\nHost: x\r\n\r\n")
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def test_serve_keeps_inside_the_index_and_answers_nul_with_400(tmp_path: Path) -> None:
    root = tmp_path / "index"
    wheel = make_wheel(tmp_path / "w", "demo", "1.0")
    publish([wheel], str(root), verified={wheel: True})
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("not for the web\n")
    os.symlink(secret.parent, root / "files" / "etclink")  # a folder link out of the tree
    os.symlink(secret, root / "files" / "demo" / "demo-9.0-py3-none-any.whl")  # a file link out
    os.symlink("/etc", root / "simple" / "etc")
    (root / "files" / "demo" / "lock.whl").symlink_to(root / ".rewheel" / "lock")  # inside, but hidden
    (root / "files" / "demo" / "inside-link.metadata").symlink_to(
        root / "files/demo" / (wheel.name + ".metadata")
    )
    with rewheel_serve(root) as (server, base):
        assert _status(_raw_request(base, f"/files/demo/{wheel.name}".encode())) == 200
        assert _status(_raw_request(base, b"/files/demo/inside-link.metadata")) == 200  # stays inside
        for target in (
            b"/files/etclink/secret.txt",
            b"/files/demo/demo-9.0-py3-none-any.whl",
            b"/simple/etc/passwd",
            b"/simple/etc/",
            b"/files/%2e%2e/%2e%2e/outside/secret.txt",
            b"/../outside/secret.txt",
            b"/files/demo/",
            b"/files/demo/lock.whl",
        ):
            response = _raw_request(base, target)
            assert _status(response) == 404, (target, response[:200])
            assert b"not for the web" not in response and b"root:" not in response
        for target in (b"/simple/%00/", b"/files/demo/x%00.whl", b"/simple/demo/%00"):
            assert _status(_raw_request(base, target)) == 400, target
        log = server.log()
    assert "Traceback" not in log and "embedded null" not in log, log


def _serve_in_thread(root: Path, **options: Any) -> tuple[BoundedHTTPServer, threading.Thread]:
    server = make_server(root, **options)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    return server, thread


def _get(port: int, path: str = "/simple/demo/") -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as connection:
        connection.sendall(
            f"GET {path} HTTP/1.0\r\nAccept: application/vnd.pypi.simple.v1+json\r\n\r\n".encode()
        )
        head = connection.recv(64)
    return _status(head)


@pytest.mark.timeout(600)  # bounded: every socket has a timeout, and this bounds the whole run
def test_serve_queues_a_burst_in_its_backlog_and_answers_every_request(tmp_path: Path) -> None:
    """200 connections arrive while the server is not accepting (its loop not started yet): a real listen
    backlog holds them all (backlog 5 held 5 and left the rest to SYN retries), and once the loop runs,
    a bounded pool answers every one of them."""
    root = tmp_path / "index"
    wheel = make_wheel(tmp_path / "w", "demo", "1.0")
    publish([wheel], str(root), verified={wheel: True})
    burst = min(200, int(Path("/proc/sys/net/core/somaxconn").read_text()) - 1)
    server, thread = _serve_in_thread(root, workers=8)
    port = int(server.server_address[1])
    connections = []
    try:
        for _ in range(burst):
            connection = socket.socket()
            connection.setblocking(False)
            connection.connect_ex(("127.0.0.1", port))
            connections.append(connection)
        import selectors

        pending = selectors.DefaultSelector()
        for connection in connections:
            pending.register(connection, selectors.EVENT_WRITE)
        connected = 0
        while connected < burst:
            ready = pending.select(timeout=5)  # loopback handshakes complete at once when queued
            if not ready:
                break
            for key, _ in ready:
                pending.unregister(key.fileobj)
                connected += key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0  # type: ignore[union-attr]
        assert connected == burst, f"only {connected} of {burst} connections were queued by the backlog"
        for connection in connections:
            connection.setblocking(True)
            connection.settimeout(60)
            connection.sendall(b"GET /simple/demo/ HTTP/1.0\r\nAccept: text/html\r\n\r\n")
        thread.start()
        answered = 0
        for connection in connections:
            head = connection.recv(64)
            answered += head.startswith(b"HTTP/1.0 200")
        assert answered == burst
        # and a second, counted round from 32 client threads at once
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(32) as clients:
            statuses = list(clients.map(lambda _: _get(port), range(400)))
        assert statuses.count(200) == 400
        print(f"load: {burst} queued connections answered, then 400 requests from 32 clients, all 200")
    finally:
        for connection in connections:
            connection.close()
        if thread.is_alive():
            server.shutdown()
        server.server_close()


@pytest.mark.timeout(600)
def test_serve_idle_connections_cost_no_worker_and_the_oldest_make_room(tmp_path: Path) -> None:
    """300 connections that never send a byte (the old server: a thread each, then silence): they wait
    without a worker, so a real request behind them is answered by one of 8 workers at once; with room for
    100 connections the oldest idle ones are closed to make room, and the thread count stays fixed."""
    root = tmp_path / "index"
    wheel = make_wheel(tmp_path / "w", "demo", "1.0")
    publish([wheel], str(root), verified={wheel: True})
    threads_before = threading.active_count()
    server, thread = _serve_in_thread(root, workers=8, idle_timeout=300, max_connections=100)
    port = int(server.server_address[1])
    thread.start()
    held = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(300)]
    try:
        allowed = threads_before + 1 + 1 + 8  # the accept loop, the waiting room, the workers
        assert threading.active_count() <= allowed
        statuses = [_get(port) for _ in range(20)]
        assert statuses == [200] * 20
        # accepted in order before the requests, so the 200 oldest were closed to make room
        assert sum(connection.recv(1) == b"" for connection in held[:200]) == 200
        assert threading.active_count() <= allowed
        print(
            f"idle: 300 held connections, 20 requests answered, {threading.active_count() - threads_before} threads"
        )
    finally:
        for connection in held:
            connection.close()
        server.shutdown()
        server.server_close()


@pytest.mark.timeout(600)
def test_serve_closes_idle_connections_after_the_idle_timeout(tmp_path: Path) -> None:
    root = tmp_path / "index"
    wheel = make_wheel(tmp_path / "w", "demo", "1.0")
    publish([wheel], str(root), verified={wheel: True})
    server, thread = _serve_in_thread(root, workers=2, idle_timeout=0.3)
    port = int(server.server_address[1])
    thread.start()
    held = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(50)]
    try:
        assert sum(connection.recv(1) == b"" for connection in held) == 50  # the server hung up on each
        assert _get(port) == 200
        with socket.create_connection(("127.0.0.1", port), timeout=60) as slow:
            slow.sendall(b"GET /simple/demo/ HTTP/1.0\r\n")  # a request that never ends: a worker gives up
            assert slow.recv(1) == b""
        assert _get(port) == 200
    finally:
        for connection in held:
            connection.close()
        server.shutdown()
        server.server_close()
