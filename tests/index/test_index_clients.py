"""The index with the real clients: pip 22.3.1 (CPython 3.11.0-3.11.2's own, and rewheel's musl CPython's),
23.0.1, 23.2.1, 24.0, the newest pip, and uv, each installing from `rewheel serve` (JSON pages), from
`rewheel serve --pages html` (a plain HTML host) and from nginx with the configuration rewheel writes.

The clients live in venvs cached under the shared test cache (pinned versions; a second run reuses
them). pip 22.3.1 predates Python 3.12, so the clients run on a CPython 3.11.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import unavailable
from helpers.index import Server, nginx_serve, rewheel_serve
from pipeline.index import publish

PIPS = ("22.3.1", "23.0.1", "23.2.1", "24.0", "26.3")  # 26.3: the newest pip when this was written
UV = "0.13.9"
CLIENTS = [f"pip-{version}" for version in PIPS] + [f"uv-{UV}"]
SERVERS = ["serve-json", "serve-html", "nginx"]
INSTALL_TIMEOUT = 600


def _python311() -> str:
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    found = shutil.which("python3.11") or next(
        iter(sorted(glob.glob("/root/.pyenv/versions/3.11*/bin/python3.11"))), None
    )
    if not found:
        unavailable("the index client tests need a CPython 3.11 (pip 22.3.1 does not run on 3.12)")
    assert found
    return found


def _cached_venv(cache: Path, name: str, requirement: str, python: str) -> Path:
    """A venv holding `requirement`, made once into the shared cache (made aside, then renamed)."""
    folder = cache / "index-clients" / f"{name}-py311"
    if (folder / ".complete").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=folder.parent))
    subprocess.run([python, "-m", "venv", "--without-pip", str(scratch)], check=True)
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(scratch / "bin" / "python"), "install", "-q",
         "--disable-pip-version-check", requirement],
        capture_output=True, text=True, timeout=INSTALL_TIMEOUT,
    )  # fmt: skip
    if installed.returncode != 0:
        shutil.rmtree(scratch, ignore_errors=True)
        unavailable(f"cannot install {requirement} for the client tests: {installed.stderr.strip()[-300:]}")
    (scratch / ".complete").write_text(requirement + "\n")
    try:
        os.rename(scratch, folder)
    except OSError:  # another session made it first
        shutil.rmtree(scratch, ignore_errors=True)
    return folder


@pytest.fixture(scope="session")
def clients(shared_cache: Path) -> dict[str, list[str]]:
    """client name -> the command that runs it (pip as `python -m pip`, uv as `uv pip`)."""
    python = _python311()
    commands: dict[str, list[str]] = {}
    for version in PIPS:
        venv = _cached_venv(shared_cache, f"pip-{version}", f"pip=={version}", python)
        commands[f"pip-{version}"] = [str(venv / "bin" / "python"), "-m", "pip"]
    venv = _cached_venv(shared_cache, f"uv-{UV}", f"uv=={UV}", python)
    commands[f"uv-{UV}"] = [str(venv / "bin" / "uv"), "pip"]
    return commands


@pytest.fixture(scope="module")
def served_index(six_wheel: Path, markupsafe_wheel: Path) -> Iterator[Path]:
    """An index nginx's workers (user nobody) can read: a world-readable folder outside pytest's 0700 one."""
    folder = Path(tempfile.mkdtemp(prefix="rewheel-clients-"))
    folder.chmod(0o755)
    root = folder / "index"
    publish([six_wheel, markupsafe_wheel], str(root), verified={six_wheel: True, markupsafe_wheel: True})
    try:
        yield root
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def servers(served_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    from contextlib import ExitStack, contextmanager

    runtime = tmp_path_factory.mktemp("nginx")  # pid, logs: written by nginx's master (this user)
    with ExitStack() as stack:
        urls = {}
        _, urls["serve-json"] = stack.enter_context(rewheel_serve(served_index))
        html_server = Server(
            [sys.executable, "-m", "pipeline", "serve", str(served_index), "--port", "0", "--pages", "html"],
            re.compile(r"at (http://127\.0\.0\.1:\d+)/simple/"),
        )
        stack.callback(html_server.stop)
        assert html_server.match
        urls["serve-html"] = html_server.match.group(1)
        urls["nginx"] = stack.enter_context(contextmanager(nginx_serve)(served_index, runtime))
        yield urls


def _install(client: list[str], base: str, target: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    index = ["--index-url", f"{base}/simple/"]
    if client[-1] == "pip" and client[-2] != "-m":  # uv
        python = Path(client[0]).parent / "python"
        command = [
            *client,
            "install",
            "--no-cache",
            "--no-config",
            "--python",
            str(python),
            "--target",
            str(target),
            *index,
        ]
    else:
        command = [
            *client,
            "install",
            "--isolated",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--target",
            str(target),
            *index,
        ]
    return subprocess.run([*command, "six==1.16.0", "markupsafe==2.1.5"], capture_output=True, text=True, env=env, timeout=INSTALL_TIMEOUT)  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("client", CLIENTS)
def test_real_clients_install_from_every_way_of_serving(
    clients: dict[str, list[str]], servers: dict[str, str], client: str, server: str, tmp_path: Path
) -> None:
    target = tmp_path / "site"
    done = _install(clients[client], servers[server], target)
    assert done.returncode == 0, f"{client} from {server}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr
    assert (target / "six.py").is_file()
    assert list((target / "markupsafe").glob("_speedups*.so")), (
        "markupsafe's compiled wheel was not installed"
    )
    checked = subprocess.run(
        [_python311(), "-c", "import markupsafe, six; print(markupsafe.escape('<x>'), six.__version__)"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(target)},
    )  # fmt: skip
    assert checked.stdout.strip() == "&lt;x&gt; 1.16.0", checked.stderr


@pytest.mark.slow
def test_nginx_negotiates_like_rewheel_serve_and_keeps_to_the_tree(
    servers: dict[str, str], served_index: Path
) -> None:
    import urllib.error
    import urllib.request

    secret = served_index.parent / "secret.txt"
    secret.write_text("not for the web\n")
    os.symlink(secret, served_index / "files" / "six" / "six-9.9-py3-none-any.whl")
    os.symlink("/etc", served_index / "files" / "etc")

    def get(path: str, accept: str | None = None) -> tuple[int, str, bytes]:
        request = urllib.request.Request(
            servers["nginx"] + path, headers={"Accept": accept} if accept else {}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.headers["Content-Type"], response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, "", b""

    try:
        status, kind, body = get("/simple/six/", "application/vnd.pypi.simple.v1+json, text/html;q=0.1")
        assert (status, kind) == (200, "application/vnd.pypi.simple.v1+json") and b'"core-metadata"' in body
        status, kind, body = get("/simple/six/")
        assert (status, kind) == (200, "text/html") and b"data-core-metadata" in body
        assert b"dist-info-metadata" not in body
        assert get("/.rewheel/lock")[0] == 404
        assert get("/files/six/")[0] in (403, 404)  # no listings
        for path in ("/files/six/six-9.9-py3-none-any.whl", "/files/etc/passwd"):
            status, _, body = get(path)
            assert status in (403, 404) and b"not for the web" not in body and b"root:" not in body
    finally:
        (served_index / "files" / "six" / "six-9.9-py3-none-any.whl").unlink()
        (served_index / "files" / "etc").unlink()
