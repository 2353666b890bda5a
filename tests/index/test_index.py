"""The static index: pages (PEP 503/629/658/691/700/714), immutability, the verify gate, channels, yank,
rebuild, incremental updates, `rewheel serve` content negotiation, and pip installing from it for real."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from helpers.index import (
    fresh_venv,
    pip_into,
    python_http_server,
    rewheel_serve,
    verify_record,
)
from helpers.synthetic import make_wheel
from pipeline.index import publish
from pipeline.index.static import StaticIndex, check_index


def _publish_trusted(wheels: list[Path], root: Path, **options) -> object:
    return publish(wheels, str(root), verified={w: True for w in wheels}, **options)


@pytest.fixture
def index_with_real_wheels(tmp_path: Path, six_wheel: Path, markupsafe_wheel: Path) -> Path:
    root = tmp_path / "index"
    _publish_trusted([six_wheel, markupsafe_wheel], root)
    return root


def test_pages_carry_hashes_metadata_and_pep700_fields(
    index_with_real_wheels: Path, markupsafe_wheel: Path
) -> None:
    import hashlib
    import zipfile

    root = index_with_real_wheels
    page = (root / "simple/markupsafe/index.html").read_text()
    sha = hashlib.sha256(markupsafe_wheel.read_bytes()).hexdigest()
    assert '<meta name="pypi:repository-version" content="1.1">' in page
    assert f"#sha256={sha}" in page
    assert 'data-requires-python="&gt;=3.7"' in page  # HTML-escaped, as PEP 503 requires
    with zipfile.ZipFile(markupsafe_wheel) as archive:
        metadata = archive.read("MarkupSafe-2.1.5.dist-info/METADATA")
    metadata_file = root / "files/markupsafe" / (markupsafe_wheel.name + ".metadata")
    assert metadata_file.read_bytes() == metadata
    metadata_sha = hashlib.sha256(metadata).hexdigest()
    assert f'data-core-metadata="sha256={metadata_sha}"' in page
    assert "data-dist-info-metadata" not in page  # PEP 714: pip 22.3 crashes on the old name

    document = json.loads((root / "simple/markupsafe/index.json").read_text())
    assert document["meta"]["api-version"] == "1.1"
    assert document["versions"] == ["2.1.5"]
    (item,) = document["files"]
    assert item["hashes"] == {"sha256": sha}
    assert item["core-metadata"] == {"sha256": metadata_sha}
    assert "dist-info-metadata" not in item
    assert item["size"] == markupsafe_wheel.stat().st_size
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", item["upload-time"])
    assert item["yanked"] is False and item["requires-python"] == ">=3.7"
    root_json = json.loads((root / "simple/index.json").read_text())
    assert root_json["projects"] == [{"name": "markupsafe"}, {"name": "six"}]
    assert check_index(root) == []


def test_same_bytes_is_a_no_op_and_different_bytes_are_refused(tmp_path: Path, run_cli) -> None:
    root = tmp_path / "index"
    first = make_wheel(tmp_path / "one", "demo", "1.0")
    record = verify_record(tmp_path / "ok.json", [first])
    code, out, err = run_cli("publish", str(first), "--to", str(root), "--verified-by", str(record), "--json")
    assert code == 0, err
    assert json.loads(out)["files"][0]["status"] == "added"
    code, out, _ = run_cli("publish", str(first), "--to", str(root), "--verified-by", str(record), "--json")
    assert code == 0 and json.loads(out)["files"][0]["status"] == "unchanged"

    impostor = make_wheel(tmp_path / "two", "demo", "1.0", payload="# other bytes\n")
    record = verify_record(tmp_path / "impostor.json", [impostor])
    code, out, err = run_cli("publish", str(impostor), "--to", str(root), "--verified-by", str(record))
    assert code == 2
    assert "immutable" in err and len(err.strip().splitlines()) == 1
    assert (root / "files/demo" / first.name).read_bytes() == first.read_bytes()


def test_a_wheel_that_failed_verify_is_refused_before_anything_is_written(tmp_path: Path, run_cli) -> None:
    wheel = make_wheel(tmp_path, "demo", "1.0")
    record = verify_record(tmp_path / "bad.json", [wheel], ok=False)
    code, _, err = run_cli(
        "publish", str(wheel), "--to", str(tmp_path / "index"), "--verified-by", str(record)
    )
    assert code == 2 and "did not pass verify" in err
    assert not (tmp_path / "index").exists()


def test_a_wheel_without_a_verdict_goes_through_the_symbol_checker(
    tmp_path: Path, six_wheel: Path, markupsafe_wheel: Path, run_cli
) -> None:
    import importlib

    root = tmp_path / "index"
    code, out, err = run_cli("publish", str(six_wheel), "--to", str(root), "--json")
    verify = getattr(importlib.import_module("pipeline.verify"), "verify_wheel", None)
    if verify is None:  # the symbol checker is not there: refusing is the only safe answer
        assert code == 2 and "cannot verify" in err
        return
    assert code == 0, err
    assert json.loads(out)["files"][0]["status"] == "added"
    (item,) = json.loads((root / "simple/six/index.json").read_text())["files"]
    assert item["_rewheel"]["verification"] == "verify_wheel:any"
    # A glibc wheel claimed for Alpine: the real checker rejects it, and nothing is published.
    code, _, err = run_cli(
        "publish", str(markupsafe_wheel), "--to", str(root), "--target", "musllinux_1_2_x86_64"
    )
    assert code == 2 and "did not pass verify for musllinux_1_2_x86_64" in err
    assert not (root / "files/markupsafe").exists()


def test_channels_and_targets(tmp_path: Path) -> None:
    from pipeline.index.gate import infer_target

    windows = Path("pkg-1.0-cp311-cp311-win_amd64.whl")
    assert infer_target(windows) == "win_amd64"
    assert infer_target(windows, "nanoserver") == "win_amd64-nanoserver"
    assert infer_target(Path("a-1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")) == (
        "manylinux_2_17_x86_64"
    )
    assert infer_target(Path("a-1-py3-none-any.whl")) == "any"

    root = tmp_path / "index"
    wheel = make_wheel(tmp_path, "demo", "1.0")
    result = publish([wheel], str(root), verified={wheel: True}, target="win_amd64-nanoserver")
    assert result.files[0]["channel"] == "nanoserver"  # the target's channel, without being told
    assert (root / "nanoserver/simple/demo/index.html").is_file()
    assert not (root / "simple").exists()
    _publish_trusted([wheel], root, channel="servercore")
    assert check_index(root / "servercore") == [] and check_index(root / "nanoserver") == []
    from pipeline.index.wheelinfo import PublishError

    with pytest.raises(PublishError, match="channel"):
        _publish_trusted([wheel], root, channel="simple")


def test_yank_and_unyank(index_with_real_wheels: Path, six_wheel: Path, run_cli) -> None:
    root = index_with_real_wheels
    in_index = root / "files/six" / six_wheel.name
    code, _, err = run_cli("yank", str(in_index), "--reason", 'broken <on> "musl"')
    assert code == 0, err
    page = (root / "simple/six/index.html").read_text()
    assert 'data-yanked="broken &lt;on&gt; &quot;musl&quot;"' in page
    assert (
        json.loads((root / "simple/six/index.json").read_text())["files"][0]["yanked"] == 'broken <on> "musl"'
    )
    code, _, _ = run_cli("yank", six_wheel.name, "--index", str(root), "--undo")
    assert code == 0
    assert "data-yanked" not in (root / "simple/six/index.html").read_text()
    code, _, err = run_cli("yank", "nothere-1.0-py3-none-any.whl", "--index", str(root))
    assert code == 2 and "not in the index" in err


def test_rebuild_from_the_files_alone(index_with_real_wheels: Path, run_cli) -> None:
    import shutil

    root = index_with_real_wheels
    StaticIndex(root).yank("six-1.16.0-py2.py3-none-any.whl", "old")
    before = {p: p.read_bytes() for p in sorted((root / "simple").rglob("index.*"))}
    code, out, err = run_cli("index", "rebuild", str(root), "--json")
    assert code == 0, err
    assert json.loads(out)["files"] == 2
    assert {p: p.read_bytes() for p in sorted((root / "simple").rglob("index.*"))} == before  # yank kept

    shutil.rmtree(root / "simple")
    shutil.rmtree(root / ".rewheel")
    for metadata in root.rglob("*.metadata"):
        metadata.unlink()
    code, _, err = run_cli("index", "rebuild", str(root))
    assert code == 0, err
    assert check_index(root) == []
    assert len(json.loads((root / "simple/index.json").read_text())["projects"]) == 2
    code, out, _ = run_cli("index", "check", str(root), "--json")
    assert code == 0 and json.loads(out)["ok"] is True


def test_check_finds_a_tampered_file(index_with_real_wheels: Path, six_wheel: Path, run_cli) -> None:
    target = index_with_real_wheels / "files/six" / six_wheel.name
    target.write_bytes(target.read_bytes() + b"tampered")
    code, out, _ = run_cli("index", "check", str(index_with_real_wheels))
    assert code == 1 and "advertised sha256" in out


def test_adding_one_wheel_rewrites_only_its_project_and_the_list(tmp_path: Path) -> None:
    root = tmp_path / "index"
    wheels = [make_wheel(tmp_path / "w", f"p{i}", "1.0") for i in range(3)]
    _publish_trusted(wheels, root)
    others = [root / "simple" / p / n for p in ("p1", "p2") for n in ("index.html", "index.json")]
    listing = [root / "simple/index.json", root / "simple/index.html"]

    def stamps(paths: list[Path]) -> dict[Path, int]:
        return {p: p.stat().st_mtime_ns for p in paths}

    before, listed_before = stamps(others), stamps(listing)
    _publish_trusted([make_wheel(tmp_path / "w", "p0", "2.0")], root)  # a new version of p0
    assert stamps(others) == before
    assert stamps(listing) == listed_before  # same projects: the list is not rewritten
    assert json.loads((root / "simple/p0/index.json").read_text())["versions"] == ["1.0", "2.0"]
    _publish_trusted([make_wheel(tmp_path / "w", "p3", "1.0")], root)  # a new project
    assert stamps(others) == before
    assert all(stamps(listing)[p] > listed_before[p] for p in listing)
    assert [p["name"] for p in json.loads(listing[0].read_text())["projects"]] == ["p0", "p1", "p2", "p3"]


def test_a_file_copied_in_by_a_killed_publisher_is_picked_up(tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "index"
    listed = make_wheel(tmp_path / "w", "demo", "1.0")
    _publish_trusted([listed], root)
    # What a publisher killed after renaming a wheel into place, but before writing pages, leaves behind:
    orphan = make_wheel(tmp_path / "w", "demo", "1.1")
    shutil.copyfile(orphan, root / "files/demo" / orphan.name)
    (root / "files/demo/.tmp-1-abcd-demo-1.2-py3-none-any.whl").write_bytes(b"half a wheel")
    assert check_index(root) == []  # not listed yet, but nothing listed is broken
    _publish_trusted([make_wheel(tmp_path / "w", "demo", "2.0")], root)
    assert json.loads((root / "simple/demo/index.json").read_text())["versions"] == ["1.0", "1.1", "2.0"]
    assert (root / "files/demo" / (orphan.name + ".metadata")).is_file()
    assert not list((root / "files/demo").glob(".tmp-*"))
    assert check_index(root) == []


def test_content_negotiation_of_rewheel_serve(index_with_real_wheels: Path) -> None:
    from pipeline.index.server import negotiate

    both = {"index.json", "index.html"}
    pips_accept = (
        "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
    )
    assert negotiate(pips_accept, both) == ("application/vnd.pypi.simple.v1+json", "index.json")
    assert negotiate(None, both) == ("text/html", "index.html")
    assert negotiate("*/*", both)[1] == "index.json"
    assert negotiate("application/vnd.pypi.simple.v1+json;q=0.2, text/html;q=0.9", both)[1] == "index.html"
    assert negotiate("application/vnd.pypi.simple.latest+json", both)[1] == "index.json"
    assert negotiate("application/vnd.pypi.simple.v1+json;q=0, text/*", both) == ("text/html", "index.html")
    assert negotiate("application/xml", both) is None

    def get(url: str, accept: str | None = None) -> tuple[int, str, bytes]:
        request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.headers["Content-Type"], response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, "", b""

    with rewheel_serve(index_with_real_wheels) as (_, base):
        status, kind, body = get(f"{base}/simple/six/", pips_accept)
        assert (status, kind) == (200, "application/vnd.pypi.simple.v1+json")
        assert json.loads(body)["name"] == "six"
        status, kind, body = get(f"{base}/simple/six/", "application/vnd.pypi.simple.v1+html")
        assert (status, kind) == (200, "application/vnd.pypi.simple.v1+html") and b"<a href" in body
        assert get(f"{base}/simple/")[1] == "text/html"
        assert get(f"{base}/simple/?format=json")[1] == "application/vnd.pypi.simple.v1+json"
        assert get(f"{base}/simple/six/", "application/xml")[0] == 406
        assert get(f"{base}/.rewheel/lock")[0] == 404  # rewheel's own folder is not public
        assert get(f"{base}/%2erewheel/lock")[0] == 404
        assert get(f"{base}/files/six/")[0] == 404  # no folder listings
        assert get(f"{base}/files/six/six-1.16.0-py2.py3-none-any.whl.metadata")[0] == 200


def _hash_requirement(tmp_path: Path, line: str) -> Path:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(line + "\n")
    return requirements


@pytest.mark.slow
def test_pip_installs_from_rewheel_serve_using_pep658_metadata(
    index_with_real_wheels: Path, markupsafe_wheel: Path, tmp_path: Path
) -> None:
    python = fresh_venv(tmp_path / "venv")
    with rewheel_serve(index_with_real_wheels) as (server, base):
        # Resolution only: with core metadata served, pip never needs the wheel itself.
        dry = pip_into(python, "install", "--dry-run", "--index-url", f"{base}/simple/", "markupsafe")
        assert dry.returncode == 0, dry.stdout + dry.stderr
        assert re.search(
            r"Obtaining dependency information for markupsafe from \S+\.whl\.metadata", dry.stdout
        )
        log = server.log()
        assert re.search(r'"GET /files/markupsafe/\S+\.whl\.metadata HTTP', log)
        assert not re.search(r'"GET /files/markupsafe/\S+\.whl HTTP', log)

        sha = __import__("hashlib").sha256(markupsafe_wheel.read_bytes()).hexdigest()
        requirements = _hash_requirement(tmp_path, f"markupsafe==2.1.5 --hash=sha256:{sha}")
        done = pip_into(
            python, "install", "--require-hashes", "--index-url", f"{base}/simple/", "-r", str(requirements)
        )
        assert done.returncode == 0, done.stdout + done.stderr
    check = __import__("subprocess").run(
        [str(python), "-c", "import markupsafe; print(markupsafe.escape('<x>'), markupsafe.__version__)"],
        capture_output=True,
        text=True,
    )
    assert check.stdout.strip() == "&lt;x&gt; 2.1.5", check.stderr


@pytest.mark.slow
def test_pip_installs_from_a_plain_static_server_with_require_hashes(
    index_with_real_wheels: Path, six_wheel: Path, tmp_path: Path
) -> None:
    python = fresh_venv(tmp_path / "venv")
    sha = __import__("hashlib").sha256(six_wheel.read_bytes()).hexdigest()
    requirements = _hash_requirement(tmp_path, f"six==1.16.0 --hash=sha256:{sha}")
    with python_http_server(index_with_real_wheels) as (server, base):
        # A plain static server sends text/html: pip reads data-core-metadata from the HTML page.
        dry = pip_into(python, "install", "--dry-run", "--index-url", f"{base}/simple/", "six")
        assert dry.returncode == 0, dry.stdout + dry.stderr
        assert re.search(r"Obtaining dependency information for six from \S+\.whl\.metadata", dry.stdout)
        assert re.search(r'"GET /files/six/six-1.16.0-py2.py3-none-any.whl.metadata HTTP', server.log())
        # With --require-hashes pip checks the wheel itself (it skips metadata-only fetching by design).
        done = pip_into(
            python, "install", "--require-hashes", "--index-url", f"{base}/simple/", "-r", str(requirements)
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Successfully installed six-1.16.0" in done.stdout
        wrong = _hash_requirement(tmp_path, "six==1.16.0 --hash=sha256:" + "0" * 64)
        refused = pip_into(
            python, "install", "--force-reinstall", "--require-hashes", "--index-url", f"{base}/simple/",
            "-r", str(wrong),
        )  # fmt: skip
        assert refused.returncode != 0 and "DO NOT MATCH THE HASHES" in refused.stderr
    assert (python.parent.parent / "lib").exists()
    listed = list((python.parent.parent / "lib").glob("python3*/site-packages/six.py"))
    assert listed, "six was not installed"


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, run_cli) -> None:
    cases = [
        ("publish", str(tmp_path / "missing.whl"), "--to", str(tmp_path / "index")),
        ("publish", str(tmp_path), "--to", str(tmp_path / "index")),  # a folder without wheels
        ("serve", str(tmp_path), "--port", "0"),  # not an index root
        ("yank", str(tmp_path / "x-1.0-py3-none-any.whl")),  # not inside an index
    ]
    for args in cases:
        code, _, err = run_cli(*args)
        assert code == 2, (args, err)
        assert len(err.strip().splitlines()) == 1 and err.startswith("rewheel: error: "), err


@pytest.mark.slow
def test_pip_for_alpine_arm64_takes_the_musllinux_aarch64_wheel(tmp_path: Path) -> None:
    """The issue's case: several builds of one version in the index; pip resolving for Alpine on arm64
    (told with --platform, as this host is glibc x86_64) must pick rewheel's musllinux aarch64 wheel."""
    tags = ["cp311-cp311-manylinux_2_17_x86_64", "cp311-cp311-manylinux_2_17_aarch64",
            "cp311-cp311-musllinux_1_2_x86_64", "cp311-cp311-musllinux_1_2_aarch64"]  # fmt: skip
    wheels = [make_wheel(tmp_path / "w", "cffi-demo", "1.17.1", tag=tag) for tag in tags]
    root = tmp_path / "index"
    _publish_trusted(wheels, root)
    target_python = fresh_venv(tmp_path / "venv")
    with rewheel_serve(root) as (_, base):
        done = pip_into(
            target_python, "download", "--no-deps", "--dest", str(tmp_path / "got"), "--only-binary=:all:",
            "--platform", "musllinux_1_2_aarch64", "--python-version", "3.11", "--implementation", "cp",
            "--index-url", f"{base}/simple/", "cffi-demo",
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert [p.name for p in (tmp_path / "got").iterdir()] == [
        "cffi_demo-1.17.1-cp311-cp311-musllinux_1_2_aarch64.whl"
    ]
