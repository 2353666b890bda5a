"""Uploading to a real pypiserver on 127.0.0.1 with twine: credentials from the environment and never
shown, immutability checked against the server's own page, retries on 5xx, and pip installing back."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from conftest import unavailable
from helpers.index import (
    free_port,
    fresh_venv,
    pip_into,
    verify_record,
    wait_http,
)
from helpers.synthetic import make_wheel, wheel_bytes

USER = "publisher"
PASSWORD = "s3cret-Pa55-for-rewheel-tests"


@contextmanager
def _running_pypiserver(tmp_path: Path, fallback: str | None = None) -> Iterator[str]:
    """A real pypiserver: uploads need the htpasswd login, reading is open. Without `fallback` it never
    redirects; with it, projects it does not have are redirected there (its default is a public index)."""
    try:
        import pypiserver  # noqa: F401
        from passlib.apache import HtpasswdFile
    except ImportError as exc:
        unavailable(f"pypiserver and passlib are needed (pip install 'rewheel[test]'): {exc}")

    htpasswd = HtpasswdFile(str(tmp_path / "htpasswd"), new=True)
    htpasswd.set_password(USER, PASSWORD)
    htpasswd.save()
    packages = tmp_path / "packages"
    packages.mkdir()
    port = free_port()
    redirect = ["--fallback-url", fallback] if fallback else ["--disable-fallback"]
    command = [
        sys.executable, "-m", "pypiserver", "run", "-i", "127.0.0.1", "-p", str(port),
        "-P", str(tmp_path / "htpasswd"), "-a", "update", *redirect, "--hash-algo", "sha256",
        str(packages),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/simple/")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def pypiserver(tmp_path: Path) -> Iterator[str]:
    with _running_pypiserver(tmp_path) as url:
        yield url


class _Recorder(BaseHTTPRequestHandler):
    """A second origin (same host, another port): records every request's headers, has nothing."""

    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:
        type(self).seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def _listener(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_credentials_never_follow_the_fallback_redirect_to_another_origin(tmp_path: Path) -> None:
    """pypiserver redirects a project it does not have to its fallback index. Before the first upload of a
    project, rewheel reads the project's page: the password must not travel with that redirect."""
    _Recorder.seen = []
    with (
        _listener(_Recorder) as other_origin,
        _running_pypiserver(tmp_path, f"{other_origin}/simple/") as server,
    ):
        redirect = requests.get(f"{server}/simple/demo/", allow_redirects=False, timeout=30)
        assert redirect.is_redirect and redirect.headers["Location"].startswith(other_origin)
        _Recorder.seen = []
        wheel = make_wheel(tmp_path / "w", "demo", "1.0")
        record = verify_record(tmp_path / "ok.json", [wheel])
        done = _publish([str(wheel), "--to", server, "--verified-by", str(record), "--json"])
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["files"][0]["status"] == "uploaded"
    leaked = [request for request in _Recorder.seen if "authorization" in request]
    assert not leaked, f"credentials reached another origin: {leaked}"
    assert not any(PASSWORD in value or "Basic " in value for r in _Recorder.seen for value in r.values())


@pytest.mark.slow
def test_upload_refuses_a_name_pip_takes_for_a_file_the_server_has(pypiserver: str, tmp_path: Path) -> None:
    first = make_wheel(tmp_path / "a", "demo", "1.0")
    record = verify_record(tmp_path / "ok.json", [first])
    assert _publish([str(first), "--to", pypiserver, "--verified-by", str(record)]).returncode == 0
    for folder, filename, name, version in (
        ("b", "demo-1.0.0-py3-none-any.whl", "demo", "1.0.0"),
        ("c", "DEMO-1.0-py3-none-any.whl", "DEMO", "1.0"),
    ):
        (tmp_path / folder).mkdir()
        other = tmp_path / folder / filename
        other.write_bytes(wheel_bytes(name, version, payload="# other\n"))
        record = verify_record(tmp_path / f"{folder}.json", [other])
        refused = _publish([str(other), "--to", pypiserver, "--verified-by", str(record)])
        assert refused.returncode == 2, refused.stderr
        assert first.name in refused.stderr and "Traceback" not in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1


class _BadJsonIndex(BaseHTTPRequestHandler):
    """An upload server whose Simple API page is not a PEP 691 document."""

    body = b"{not json"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.parametrize(
    "body", [b"{not json", b"[1, 2]", b'{"files": [{"hashes": 3}]}', b'{"files": 7}', b"\xff\xfe"]
)
def test_an_upload_server_answering_bad_json_is_one_line_and_exit_2(tmp_path: Path, body: bytes) -> None:
    _BadJsonIndex.body = body
    wheel = make_wheel(tmp_path, "demo", "1.0")
    record = verify_record(tmp_path / "ok.json", [wheel])
    with _listener(_BadJsonIndex) as server:
        refused = _publish([str(wheel), "--to", server, "--verified-by", str(record)])
    assert refused.returncode == 2, refused.stderr
    assert "not a PEP 691 page" in refused.stderr and "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def _publish(args: list[str], password: str | None = PASSWORD) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWINE_", "REWHEEL_INDEX_"))}
    if password is not None:
        env.update(REWHEEL_INDEX_USERNAME=USER, REWHEEL_INDEX_PASSWORD=password)
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "publish", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.slow
def test_upload_to_pypiserver_then_pip_install(
    pypiserver: str, six_wheel: Path, markupsafe_wheel: Path, tmp_path: Path
) -> None:
    record = verify_record(tmp_path / "ok.json", [six_wheel, markupsafe_wheel])
    first = _publish(
        [str(six_wheel), str(markupsafe_wheel), "--to", pypiserver, "--verified-by", str(record), "--json"]
    )
    assert first.returncode == 0, first.stderr
    assert PASSWORD not in first.stdout + first.stderr
    assert [f["status"] for f in json.loads(first.stdout)["files"]] == ["uploaded", "uploaded"]

    again = _publish([str(six_wheel), "--to", pypiserver, "--verified-by", str(record), "--json"])
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["files"][0]["status"] == "unchanged"  # same bytes: nothing to do

    python = fresh_venv(tmp_path / "venv")
    sha = hashlib.sha256(markupsafe_wheel.read_bytes()).hexdigest()
    (tmp_path / "req.txt").write_text(f"markupsafe==2.1.5 --hash=sha256:{sha}\n")
    done = pip_into(python, "install", "--require-hashes", "--index-url", f"{pypiserver}/simple/",
                    "-r", str(tmp_path / "req.txt"))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    imported = subprocess.run([str(python), "-c", "import markupsafe; print(markupsafe.__version__)"],
                              capture_output=True, text=True)  # fmt: skip
    assert imported.stdout.strip() == "2.1.5", imported.stderr


@pytest.mark.slow
def test_upload_refuses_other_bytes_and_never_shows_the_password(pypiserver: str, tmp_path: Path) -> None:
    original = make_wheel(tmp_path / "a", "demo", "1.0")
    record = verify_record(tmp_path / "ok.json", [original])
    assert _publish([str(original), "--to", pypiserver, "--verified-by", str(record)]).returncode == 0

    impostor = make_wheel(tmp_path / "b", "demo", "1.0", payload="# different\n")
    impostor_record = verify_record(tmp_path / "impostor.json", [impostor])
    refused = _publish([str(impostor), "--to", pypiserver, "--verified-by", str(impostor_record)])
    assert refused.returncode == 2 and "immutable" in refused.stderr

    newer = make_wheel(tmp_path / "a", "demo", "2.0")
    record = verify_record(tmp_path / "ok2.json", [newer])
    wrong = "not-the-Pa55word-xyz"
    denied = _publish(
        [str(newer), "--to", pypiserver, "--verified-by", str(record), "--json"], password=wrong
    )
    assert denied.returncode == 2
    assert "403" in denied.stderr or "401" in denied.stderr, denied.stderr
    assert wrong not in denied.stdout + denied.stderr
    assert len(denied.stderr.strip().splitlines()[-1]) < 600

    url_with_secret = pypiserver.replace("http://", f"http://{USER}:{PASSWORD}@")
    via_url = _publish(
        [str(newer), "--to", url_with_secret, "--verified-by", str(record), "--json"], password=None
    )
    assert via_url.returncode == 0, via_url.stderr  # credentials written into the URL work too...
    assert json.loads(via_url.stdout)["destination"] == pypiserver
    assert PASSWORD not in via_url.stdout + via_url.stderr  # ...and are not echoed back


class _FlakyProxy(BaseHTTPRequestHandler):
    """Forwards to the real server, but answers the first `failures` uploads with 503 (a restarting proxy)."""

    upstream_port = 0
    failures = 0
    posts: list[int] = []

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.command == "POST":
            type(self).posts.append(1)
            if type(self).failures > 0:
                type(self).failures -= 1
                self.send_response(503, "Service Unavailable")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        connection = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        connection.request(self.command, self.path, body, headers)
        response = connection.getresponse()
        data = response.read()
        self.send_response(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        connection.close()

    do_GET = do_POST = _forward

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.slow
def test_transient_5xx_is_retried_with_backoff(pypiserver: str, tmp_path: Path, monkeypatch, capsys) -> None:
    from pipeline.index.upload import upload

    _FlakyProxy.upstream_port = int(pypiserver.rsplit(":", 1)[1])
    _FlakyProxy.failures = 7  # twine retries a 5xx 5 times at once by itself; rewheel backs off over that
    _FlakyProxy.posts = []
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _FlakyProxy)
    thread = threading.Thread(target=proxy.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    monkeypatch.setenv("REWHEEL_INDEX_USERNAME", USER)
    monkeypatch.setenv("REWHEEL_INDEX_PASSWORD", PASSWORD)
    try:
        wheel = make_wheel(tmp_path, "flaky", "1.0")
        proxy_url = f"http://127.0.0.1:{proxy.server_address[1]}"
        (outcome,) = upload([wheel], proxy_url, backoff=0.1)
        assert outcome.status == "uploaded" and outcome.attempts == 2
        assert len(_FlakyProxy.posts) == 5 + 3
        messages = capsys.readouterr().err.splitlines()  # the reporter's lines go to stderr
        assert sum("retrying in" in m for m in messages) == 1
        _FlakyProxy.failures = 100
        other = make_wheel(tmp_path, "flaky", "2.0")
        from pipeline.index.wheelinfo import PublishError

        with pytest.raises(PublishError, match="after 2 attempt"):
            upload([other], proxy_url, attempts=2, backoff=0.05)
        closed = f"http://127.0.0.1:{free_port()}"  # connection refused: its page cannot be read either
        with pytest.raises(PublishError, match="not uploading without knowing"):
            upload([other], closed, attempts=2, backoff=0.05)
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_scrub_removes_passwords_from_text() -> None:
    from pipeline.index.upload import Credentials, public_url

    credentials = Credentials("me", "hunter2!")
    assert (
        credentials.scrub("auth hunter2! failed at https://me:x@host/x")
        == "auth **** failed at https://****@host/x"
    )
    assert public_url("https://me:hunter2!@host:8443/upload/") == "https://host:8443/upload/"
