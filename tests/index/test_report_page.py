"""The landing pages (index.html, packages/<project>.html): escaped everywhere, regenerated with the index, and
read in a real browser (headless Chromium from Debian, installed through the project's chromium toolset)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import pytest

from conftest import need_toolset
from helpers.index import rewheel_serve
from helpers.synthetic import make_wheel
from pipeline.index import publish
from pipeline.index.static import check_index
from pipeline.proof import for_upstream, now, prove_upstream, validate

HOSTILE = '<script>alert("x")</script>\''
TARGET = "manylinux_2_17_x86_64"
MUSL = "musllinux_1_2_x86_64"


class Page(HTMLParser):
    """Tags, table cells (with their data-* attributes and text) and links of a page, as a browser's parser
    would see them."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.cells: list[dict[str, str]] = []
        self.links: list[tuple[str, str]] = []
        self._cell: dict[str, str] | None = None
        self._link: list[str] | None = None
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        attributes = {k: v or "" for k, v in attrs}
        if tag == "td":
            self._cell = {**attributes, "text": ""}
            self.cells.append(self._cell)
        elif tag == "a":
            self._link = [attributes.get("href", ""), ""]

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._cell = None
        elif tag == "a" and self._link is not None:
            self.links.append((self._link[0], self._link[1]))
            self._link = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell["text"] += data
        if self._link is not None:
            self._link[1] += data


def _hostile_wheel(folder: Path, markupsafe_wheel: Path) -> Path:
    """A wheel whose extension's file name is markup: markupsafe's real glibc extension under a musllinux tag,
    so the symbol checker's findings (real ones) carry the name into the proof record and the pages."""

    def record_hash(data: bytes) -> str:
        return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()

    with zipfile.ZipFile(markupsafe_wheel) as source:
        extension = next(source.read(n) for n in source.namelist() if n.endswith(".so"))
    dist_info = "evil-1.0.dist-info"
    members = {
        "evil/__init__.py": b"",
        f"evil/{HOSTILE}.so": extension,
        f"{dist_info}/METADATA": b"Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n\n",
        f"{dist_info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: cp311-cp311-{MUSL}\n".encode(),
    }
    record = (
        "".join(f"{p},{record_hash(d)},{len(d)}\n" for p, d in members.items()) + f"{dist_info}/RECORD,,\n"
    )
    members[f"{dist_info}/RECORD"] = record.encode()
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"evil-1.0-cp311-cp311-{MUSL}.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return wheel


def test_findings_from_untrusted_wheels_are_escaped_everywhere(
    tmp_path: Path, markupsafe_wheel: Path
) -> None:
    from pipeline.verify import verify_wheel

    wheel = _hostile_wheel(tmp_path / "in", markupsafe_wheel)
    report = verify_wheel(wheel, MUSL)
    assert not report.ok and any(HOSTILE in (f.file or "") for f in report.findings)
    verify_json = {**report.to_json(), "ok": report.ok}
    proof = for_upstream(
        wheel,
        index_url=f"https://example.invalid/simple/{HOSTILE}",
        target=MUSL,
        python="3.11",
        verify_report=verify_json,
        smoke={"status": "skipped", "message": f"verify failed: {HOSTILE}"},
        verified_at=now(),
    )
    assert validate(proof) == []
    root = tmp_path / "index"
    # The caller vouches for it (the gate is not what this test is about): what reaches the pages is a real
    # verify report full of markup.
    publish([wheel], str(root), verified={wheel: True}, target=MUSL, proofs={wheel: proof})
    for page_path in (root / "index.html", root / "packages/evil.html"):
        text = page_path.read_text()
        page = Page(text)
        assert "script" not in page.tags, page_path
        assert "<script>" not in text and HOSTILE not in text
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#x27;" in text
        assert HOSTILE in "".join(page.text)  # shown to the reader as text, exactly
    (cell,) = Page((root / "index.html").read_text()).cells
    assert cell["class"] == "failed" and cell["data-target"] == MUSL
    assert "verify failed" in cell["text"] and "glibc-on-musl" in cell["text"]


def test_landing_pages_follow_the_index(tmp_path: Path, six_wheel: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "index"
    demo = make_wheel(tmp_path / "in", "demo", "1.0")
    publish([six_wheel, demo], str(root))
    assert {p.name for p in (root / "packages").iterdir()} == {"demo.html", "six.html"}
    assert [
        c["data-project"] for c in Page((root / "index.html").read_text()).cells if "data-project" in c
    ] == [
        "demo",
        "six",
    ]
    shutil.rmtree(root / "files/demo")
    code, _, _ = run_cli("index", "rebuild", str(root))
    assert code == 0
    assert {p.name for p in (root / "packages").iterdir()} == {"six.html"}
    assert "demo" not in (root / "index.html").read_text()
    before = (root / "index.html").stat().st_mtime_ns
    run_cli("index", "rebuild", str(root))
    assert (root / "index.html").stat().st_mtime_ns == before  # unchanged pages are not rewritten
    assert not list(root.rglob(".tmp-*"))


def _chromium(*arguments: str) -> str:
    """Run Debian's chromium headless, isolated (its own profile folder, no background traffic)."""
    chromium = shutil.which("chromium")
    assert chromium
    with tempfile.TemporaryDirectory(prefix="rewheel-chromium-") as profile:
        completed = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", *arguments],
            capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": profile},
        )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed.stdout


@pytest.mark.slow
def test_the_landing_page_in_a_real_browser(tmp_path: Path, markupsafe_wheel: Path, six_wheel: Path) -> None:
    """Chromium loads the matrix from `rewheel serve`, it matches the published files, a proof link leads to
    the record of exactly that file, package pages carry install lines (the channel's for Nano Server)."""
    need_toolset("chromium")
    root = tmp_path / "index"
    proof = prove_upstream(markupsafe_wheel, index_url=None, target=TARGET, python="3.11")
    publish([markupsafe_wheel], str(root), target=TARGET, proofs={markupsafe_wheel: proof})
    publish([six_wheel], str(root))
    nano = make_wheel(tmp_path / "in", "nanodemo", "1.0", tag="cp311-cp311-win_amd64")
    publish([nano], str(root), target="win_amd64-nanoserver")
    assert check_index(root) == [] and check_index(root / "nanoserver") == []

    published = {p.name: p for p in root.rglob("files/*/*.whl")}
    with rewheel_serve(root) as (_, base):
        dom = _chromium("--dump-dom", f"{base}/")
        page = Page(dom)
        cells = {c["data-project"]: c for c in page.cells if c.get("data-project")}
        assert set(cells) == {"markupsafe", "six", "nanodemo"}
        assert len(published) == 3
        expected = {
            "markupsafe": (TARGET, "3.11", "proven", "2.1.5: upstream, verified, imported"),
            "six": ("any", "any", "partial", "1.16.0: published, verified, not imported"),
            "nanodemo": ("win_amd64-nanoserver", "3.11", "partial", "1.0: published, verified, not imported"),
        }
        for project, (target, python, state, label) in expected.items():
            cell = cells[project]
            assert (cell["data-target"], cell["data-python"], cell["class"]) == (target, python, state)
            assert cell["text"].startswith(label)

        proof_links = [href for href, text in page.links if text == "proof"]
        assert len(proof_links) == 3
        href = next(h for h in proof_links if "markupsafe" in h)
        record_dom = _chromium("--dump-dom", urljoin(f"{base}/", href))
        record = json.loads("".join(Page(record_dom).text))  # Chromium shows JSON as text in a <pre>
        assert record == json.loads((root / href).read_text())
        assert (
            record["file"]["sha256"]
            == hashlib.sha256(published[markupsafe_wheel.name].read_bytes()).hexdigest()
        )

        package_links = {text: h for h, text in page.links if h.startswith("packages/")}
        nano_page = Page(_chromium("--dump-dom", urljoin(f"{base}/", package_links["nanodemo"])))
        text = " ".join("".join(nano_page.text).split())
        assert "pip install --index-url INDEX/nanoserver/simple/ nanodemo" in text
        assert "Nano Server: its wheels carry the same win_amd64 tag" in text
        markupsafe_page = Page(_chromium("--dump-dom", urljoin(f"{base}/", package_links["markupsafe"])))
        text = " ".join("".join(markupsafe_page.text).split())
        assert "pip install --index-url INDEX/simple/ markupsafe" in text
        assert "importedmarkupsafe, markupsafe._speedups" in text  # <dt>imported</dt><dd>…

        screenshot = tmp_path / "landing.png"
        _chromium(f"--screenshot={screenshot}", "--window-size=1280,900", f"{base}/")
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 10_000
    keep = os.environ.get("REWHEEL_SCREENSHOT_DIR")
    if keep:  # how docs/landing-page.png was made
        shutil.copy(screenshot, Path(keep) / "landing-page.png")


@pytest.mark.slow
def test_nginx_serves_the_landing_pages_and_proof_records(
    six_wheel: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """With `rewheel index nginx-config`: / is the landing page, packages/ its package pages, proof records
    are JSON; the Simple API is unchanged (tests/index/test_index_clients.py installs through the same config)."""
    import urllib.request

    from helpers.index import nginx_serve

    folder = Path(tempfile.mkdtemp(prefix="rewheel-landing-"))
    try:
        folder.chmod(0o755)  # nginx's workers run as nobody
        root = folder / "index"
        publish([six_wheel], str(root))
        for base in nginx_serve(root, tmp_path_factory.mktemp("nginx")):
            expected = {
                "/": "text/html",
                "/packages/six.html": "text/html",
                f"/files/six/{six_wheel.name}.proof.json": "application/json",
            }
            for path, content_type in expected.items():
                with urllib.request.urlopen(base + path) as response:
                    assert response.headers["Content-Type"] == content_type, path
                    body = response.read()
                assert body == (root / (path.strip("/") or "index.html")).read_bytes(), path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_an_update_rereads_only_what_changed_and_recovers_without_its_state(
    tmp_path: Path, six_wheel: Path
) -> None:
    root = tmp_path / "index"
    first = make_wheel(tmp_path / "in", "alpha", "1.0")
    publish([first, six_wheel], str(root))
    state = root / ".rewheel/landing.json"
    assert set(json.loads(state.read_text())["projects"]) == {"alpha", "six"}
    six_page = root / "packages/six.html"
    before = six_page.stat().st_mtime_ns
    second = make_wheel(tmp_path / "in", "beta", "1.0")
    publish([second], str(root))
    assert six_page.stat().st_mtime_ns == before  # another project: its page is not rewritten
    projects = [
        c["data-project"] for c in Page((root / "index.html").read_text()).cells if "data-project" in c
    ]
    assert projects == ["alpha", "beta", "six"]

    state.write_text('{"format": 1, "projects": {"alpha": [{"broken": true}]}}')  # another rewheel's state
    third = make_wheel(tmp_path / "in", "gamma", "1.0")
    publish([third], str(root))
    projects = [
        c["data-project"] for c in Page((root / "index.html").read_text()).cells if "data-project" in c
    ]
    assert projects == ["alpha", "beta", "gamma", "six"]
    state.unlink()
    publish([make_wheel(tmp_path / "in", "delta", "1.0")], str(root))
    assert set(json.loads(state.read_text())["projects"]) == {"alpha", "beta", "delta", "gamma", "six"}


def test_a_yank_in_a_channel_shows_on_the_root_landing_page(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "index"
    wheel = make_wheel(tmp_path / "in", "nanodemo", "1.0", tag="cp311-cp311-win_amd64")
    publish([wheel], str(root), target="win_amd64-nanoserver")
    (cell,) = [c for c in Page((root / "index.html").read_text()).cells if c.get("data-project")]
    assert cell["data-target"] == "win_amd64-nanoserver" and "yanked" not in cell["text"]
    code, _, err = run_cli("yank", str(root / "nanoserver/files/nanodemo" / wheel.name), "--reason", "broken")
    assert code == 0, err
    (cell,) = [c for c in Page((root / "index.html").read_text()).cells if c.get("data-project")]
    assert cell["text"].startswith("1.0 (yanked): ")
    code, out, _ = run_cli("report", str(root), "--json")
    assert json.loads(out)["files"][0]["yanked"] is True
