"""The requirements flow as strict as `pip --require-hashes` (issue #24, items 1-4, 13, 15).

Each refusal is run through the real CLI as a subprocess (so the environment, secrets included, is the one a
user has), and the resolving ones against the real index or a static index served on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import io
import os
import resource
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from helpers.index import python_http_server

REPO = Path(__file__).resolve().parent.parent
ZERO = "0" * 64
SIX_WHEEL = "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254"  # six-1.16.0-py2.py3-none-any
REQUESTS_WHEEL = "58cd2187c01e70e6e26505bca751777aa9f2ee0b7f4300988b709f44e013003f"  # requests-2.31.0-py3
SECRETS = {"REWHEEL_INDEX_PASSWORD": "rw-secret-4f1c9a", "TWINE_PASSWORD": "twine-secret-8d2e7b"}
TARGET = "musllinux_1_2_x86_64"


def rewheel(
    *args: str, cwd: Path, env: dict[str, str] | None = None, memory: int | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **SECRETS, **(env or {})}

    def limit() -> None:
        if memory:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit,
    )


def assert_refused(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith("gaps: resolving")]
    assert len(lines) == 1 and message in lines[0], result.stderr
    for secret in SECRETS.values():
        assert secret not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "content, message",
    [
        ("--index-url http://127.0.0.1:9/simple/\nsix==1.16.0\n", "set the index with rewheel's --index-url"),
        ("-i http://127.0.0.1:9/simple/\nsix==1.16.0\n", "index options in a requirements file are refused"),
        ("--extra-index-url http://127.0.0.1:9/simple/\nsix\n", "index options in a requirements file"),
        ("--find-links /tmp\nsix\n", "index options in a requirements file"),
        ("-f /tmp\nsix\n", "index options in a requirements file"),
        ("--trusted-host example\nsix\n", "index options in a requirements file"),
        ("--no-index\nsix\n", "index options in a requirements file"),
        (
            "six @ http://127.0.0.1:9/six-1.16.0-py2.py3-none-any.whl\n",
            "URL and path requirements are refused",
        ),
        (f"six @ http://127.0.0.1:9/six-1.16.0.tar.gz --hash=sha256:{ZERO}\n", "URL and path requirements"),
        ("./local-project\n", "URL and path requirements are refused"),
        ("-e ./local-project\n", "editable (-e) requirements are refused"),
        ("git+https://127.0.0.1:9/x/y.git#egg=y\n", "version-control requirements are refused"),
        (f"six==1.16.0 --hash=sha256:{ZERO}\nidna==3.7\n", "r.txt:2: no --hash"),
        ("--require-hashes\nsix==1.16.0\n", "r.txt:2: no --hash"),
        (f"six>=1.16 --hash=sha256:{SIX_WHEEL}\n", "must be pinned with =="),
        ("six==1.16.0 --hash=md5:0123456789abcdef0123456789abcdef\n", "only sha256 hashes"),
        ("six==1.16.0 --hash=sha256:1234\n", "not sha256:<64 hex digits>"),
        ("--pre\nsix\n", "the option --pre is not supported"),
        ("-r r.txt\nsix\n", "includes itself"),
        ("-r http://127.0.0.1:9/r.txt\n", "must be a local file, not a URL"),
        ("six ; python_version == '${HOME}'\n", "is not expanded by rewheel"),
    ],
)
def test_refused_before_anything_is_resolved(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "r.txt").write_text(content)
    # A dead proxy: a line that reached the resolver or the fetch layer would fail differently.
    dead = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}
    assert_refused(rewheel("gaps", "-r", "r.txt", "--target", TARGET, cwd=tmp_path, env=dead), message)


def test_an_include_of_proc_environ_never_echoes_secrets(tmp_path: Path) -> None:
    (tmp_path / "r.txt").write_text("six==1.16.0\n-r /proc/self/environ\n")
    assert_refused(rewheel("gaps", "-r", "r.txt", "--target", TARGET, cwd=tmp_path), "not a regular file")
    # The same file as the top-level file.
    assert_refused(
        rewheel("gaps", "-r", "/proc/self/environ", "--target", TARGET, cwd=tmp_path), "not a regular file"
    )


def test_an_include_holding_secrets_is_never_quoted(tmp_path: Path) -> None:
    """A regular file of secrets, included: its lines are not requirements, and the error names only where."""
    (tmp_path / "secrets.env").write_text("".join(f"{k}={v}\n" for k, v in SECRETS.items()))
    (tmp_path / "r.txt").write_text("six==1.16.0\n-c secrets.env\n")
    assert_refused(rewheel("gaps", "-r", "r.txt", "--target", TARGET, cwd=tmp_path), "secrets.env:1: not a")
    result = rewheel("build", "-r", "r.txt", "--target", TARGET, cwd=tmp_path)
    assert_refused(result, "secrets.env:1:")


def test_dev_zero_and_fifos_are_refused_in_one_line_with_little_memory(tmp_path: Path) -> None:
    (tmp_path / "r.txt").write_text("six==1.16.0\n-r /dev/zero\n")
    started = time.monotonic()
    # 1 GiB of address space: the old path (uv reading /dev/zero) went to 23.9 GB before the kernel killed it.
    result = rewheel("gaps", "-r", "r.txt", "--target", TARGET, cwd=tmp_path, memory=1 << 30, timeout=120)
    assert_refused(result, "/dev/zero: not a regular file")
    assert time.monotonic() - started < 60
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "f.txt").write_text("-r pipe\n")
    assert_refused(
        rewheel("gaps", "-r", "f.txt", "--target", TARGET, cwd=tmp_path, timeout=60), "pipe: not a regular"
    )
    (tmp_path / "big.txt").write_bytes(b"# padding\n" * 200_000)
    (tmp_path / "g.txt").write_text("-r big.txt\nsix\n")
    assert_refused(rewheel("gaps", "-r", "g.txt", "--target", TARGET, cwd=tmp_path), "larger than")


def test_deep_includes_are_bounded(tmp_path: Path) -> None:
    for depth in range(20):
        (tmp_path / f"r{depth}.txt").write_text(f"-r r{depth + 1}.txt\n")
    (tmp_path / "r20.txt").write_text("six\n")
    assert_refused(rewheel("gaps", "-r", "r0.txt", "--target", TARGET, cwd=tmp_path), "nested more than")


def test_a_wrong_hash_is_refused_before_anything_is_fetched(tmp_path: Path) -> None:
    """`pip download -r r.txt` refuses this file; so must gaps and build -r, and nothing may be published."""
    (tmp_path / "r.txt").write_text(f"six==1.16.0 --hash=sha256:{ZERO}\n")
    cache = tmp_path / "cache"
    env = {"REWHEEL_CACHE_DIR": str(cache)}
    result = rewheel("gaps", "-r", "r.txt", "--target", TARGET, cwd=tmp_path, env=env)
    assert_refused(result, "six==1.16.0: no file the index lists for it matches the --hash")
    result = rewheel(
        "build", "-r", "r.txt", "--target", TARGET, "--publish", str(tmp_path / "idx"), cwd=tmp_path, env=env
    )
    assert_refused(result, "no file the index lists for it matches the --hash")
    assert not (tmp_path / "idx").exists()
    assert not list(cache.rglob("*.whl"))


def test_hash_checking_mode_accepts_a_matching_file_and_needs_every_dependency(tmp_path: Path) -> None:
    (tmp_path / "r.txt").write_text(f"six==1.16.0 \\\n    --hash=sha256:{SIX_WHEEL}\n")
    result = rewheel("gaps", "-r", "r.txt", "--target", TARGET, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert '"six-1.16.0-py2.py3-none-any.whl"' in result.stdout
    # requests' dependencies are resolved but not hashed in the file: pip refuses that in hash-checking mode.
    (tmp_path / "q.txt").write_text(f"requests==2.31.0 --hash=sha256:{REQUESTS_WHEEL}\n")
    result = rewheel("gaps", "-r", "q.txt", "--target", TARGET, cwd=tmp_path)
    assert_refused(result, "but no line of the file pins it with a --hash")


def test_pip_and_uv_config_files_are_not_obeyed(tmp_path: Path) -> None:
    """Item 13: a pip.conf or uv.toml naming another index does not steer gaps (a dead index here)."""
    dead = "http://127.0.0.1:9/simple/"
    (tmp_path / "pip.conf").write_text(f"[global]\nindex-url = {dead}\n")
    (tmp_path / "xdg" / "uv").mkdir(parents=True)
    (tmp_path / "xdg" / "uv" / "uv.toml").write_text(f'index-url = "{dead}"\n')
    (tmp_path / "uv.toml").write_text(f'index-url = "{dead}"\n')
    (tmp_path / "r.txt").write_text("six==1.16.0\n")
    env = {"PIP_CONFIG_FILE": str(tmp_path / "pip.conf"), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    env |= {"UV_INDEX_URL": dead, "UV_DEFAULT_INDEX": dead}
    result = rewheel("gaps", "-r", "r.txt", "--target", TARGET, "--no-verify", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "six-1.16.0-py2.py3-none-any.whl" in result.stdout


@pytest.mark.parametrize(
    "version", ["1.0\n--index-url http://127.0.0.1:9/simple/", "1.0 --pre", "1.0;x", "abc"]
)
def test_recipe_new_checks_its_version(tmp_path: Path, version: str) -> None:
    result = rewheel("recipe", "new", f"six=={version}", "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert_refused(result, "NAME==VERSION")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------- no build on host


def _sdist(folder: Path, name: str, version: str, pkg_info: str, marker: Path) -> Path:
    """An sdist whose setup.py writes `marker` if it ever runs where it can reach it (on the host), then
    declares a dependency on rwtestsdisthelper."""
    setup = (
        f"try:\n    open({str(marker)!r}, 'w').write('setup.py ran')\nexcept OSError:\n    pass\n"
        f"from setuptools import setup\nsetup(name={name!r}, version={version!r}, install_requires=['rwtestsdisthelper>=1'])\n"
    )
    path = folder / f"{name}-{version}.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for member, text in (("PKG-INFO", pkg_info), ("setup.py", setup)):
            data = text.encode()
            info = tarfile.TarInfo(f"{name}-{version}/{member}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def _static_index(root: Path, files: dict[str, list[Path]]) -> None:
    """A PEP 503 index of plain files (served by python's http.server): simple/<project>/index.html."""
    for project, paths in files.items():
        page = root / "simple" / project
        page.mkdir(parents=True)
        links = []
        for path in paths:
            target = root / "files" / path.name
            target.parent.mkdir(exist_ok=True)
            target.write_bytes(path.read_bytes())
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            links.append(f'<a href="../../files/{path.name}#sha256={digest}">{path.name}</a>')
        (page / "index.html").write_text("<html><body>" + "".join(links) + "</body></html>")


@pytest.mark.slow
def test_gaps_never_runs_an_sdists_setup_py(tmp_path: Path) -> None:
    """An index serving only sdists: Metadata 2.2 with static Requires-Dist is resolved from PKG-INFO; an
    old-style sdist and one marking Requires-Dist dynamic get their metadata built inside the sandbox; the
    setup.py that writes a marker file never runs on this host."""
    import json

    from conftest import need_toolset
    from helpers.synthetic import make_wheel
    from pipeline.upstream_index import default_index_url

    need_toolset("sandbox")
    marker = tmp_path / "MARKER"
    build = tmp_path / "build"
    build.mkdir()
    modern = (
        "Metadata-Version: 2.2\nName: rwtestsdiststatic\nVersion: 1.0\nRequires-Dist: rwtestsdisthelper>=1\n"
    )
    old = "Metadata-Version: 1.0\nName: rwtestsdistold\nVersion: 1.0\n"
    dynamic = "Metadata-Version: 2.2\nName: rwtestsdistdyn\nVersion: 1.0\nDynamic: Requires-Dist\n"
    _static_index(
        tmp_path / "site",
        {
            "rwtestsdiststatic": [_sdist(build, "rwtestsdiststatic", "1.0", modern, marker)],
            "rwtestsdistold": [_sdist(build, "rwtestsdistold", "1.0", old, marker)],
            "rwtestsdistdyn": [_sdist(build, "rwtestsdistdyn", "1.0", dynamic, marker)],
            "rwtestsdisthelper": [make_wheel(build, "rwtestsdisthelper", "1.2")],
        },
    )
    with python_http_server(tmp_path / "site") as (_, base):
        # The sandboxed metadata build installs setuptools into its build venv from rewheel's index too: the
        # default index stays an extra one (these project names exist only here).
        gaps = ["gaps", "-r", "r.txt", "-t", TARGET, "--index-url", f"{base}/simple/", "--json"]
        gaps += ["--extra-index-url", default_index_url()]
        for name in ("rwtestsdiststatic", "rwtestsdistold", "rwtestsdistdyn"):
            (tmp_path / "r.txt").write_text(f"{name}\n")
            result = rewheel(*gaps, cwd=tmp_path)
            assert result.returncode == 0, result.stderr
            entries = {e["name"]: e for e in json.loads(result.stdout)["requirements"]}
            assert entries[name]["status"] == "needs-build"
            assert entries[name]["file"] == f"{name}-1.0.tar.gz"
            # rwtestsdisthelper comes only from the metadata (static, or built in the sandbox).
            assert (
                entries["rwtestsdisthelper"]["status"] == "pure"
                and entries["rwtestsdisthelper"]["version"] == "1.2"
            )
            assert not marker.exists()


def test_fetch_and_gaps_read_one_index_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 13: the fetch layer, the resolver's options and every pip/uv subprocess see the same index, from
    rewheel's settings; a pip.conf naming another index is not read."""
    from pipeline.fetch import index_urls
    from pipeline.upstream_index import default_index_url, tool_environment, uv_index_options

    (tmp_path / "pip.conf").write_text("[global]\nindex-url = http://127.0.0.1:9/simple/\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(tmp_path / "pip.conf"))
    for name in ("REWHEEL_INDEX_URL", "REWHEEL_EXTRA_INDEX_URL", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
        monkeypatch.delenv(name, raising=False)
    assert index_urls() == [default_index_url()]
    ours = "http://127.0.0.1:8/simple/"
    monkeypatch.setenv("REWHEEL_INDEX_URL", ours)
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "http://127.0.0.1:7/simple/")  # REWHEEL_* set: not used
    assert index_urls() == [ours]
    assert uv_index_options() == ["--index-url", ours]
    env = tool_environment()
    assert env["PIP_CONFIG_FILE"] == os.devnull and env["UV_NO_CONFIG"] == "1"
    assert env["PIP_INDEX_URL"] == ours and "PIP_EXTRA_INDEX_URL" not in env
