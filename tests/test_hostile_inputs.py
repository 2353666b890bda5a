"""A bounded hostile-input run that keeps issue #15's findings fixed: random but seeded inputs (fixed seeds,
counted cases, loopback only) against unpack, publish, `rewheel serve` and `recipes check`, plus the
recipe cases that were accepted although wrong.

Then issue #24's reproductions, one test each: over-long paths and names, devices and deeply nested JSON
(one line, exit 2), capture-pe names, serve's bind errors, long segments and slow clients, verify records
bound to the bytes verified, local versions, crafted ELF dynamic sections and PE import tables (verify
runs capped at 2 GiB so a regression cannot take the machine), fetch's links and bounds, hostile upload
servers (huge, trickling, unreadable or nested pages, forgotten uploads, 500s), and smoke's .data merge.

Each run asserts the promises, not particular outcomes: an input is either accepted or refused with one
line and exit 2 (never a traceback); nothing is written or served outside its folder; nothing published
is replaced in effect.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import socket
import struct
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from packaging.utils import parse_wheel_filename

from helpers.index import rewheel_serve, verify_record
from helpers.synthetic import wheel_bytes
from pipeline.errors import UnsafeArchive
from pipeline.index import publish
from pipeline.index.static import check_index
from pipeline.unpack import unpack

ARCHIVES = 200
FILE_NAMES = 120
REQUESTS = 300
RECIPE_MUTATIONS = 60


def _one_line_or_ok(result: tuple[int, str, str]) -> int:
    code, _, err = result
    assert code in (0, 2), err
    assert "Traceback" not in err
    if code == 2:
        errors = [line for line in err.strip().splitlines() if line.startswith("rewheel: error: ")]
        assert len(errors) >= 1 and all("\n" not in e for e in errors), err
    return code


# ---- unpack: random tar archives full of links


def _random_tar(rng: random.Random, path: Path) -> Path:
    names = ["a", "b", "l1", "l2", "l3", "x"]
    with tarfile.open(path, "w") as archive:
        for _ in range(rng.randint(1, 8)):
            member = "/".join(rng.choice(names) for _ in range(rng.randint(1, 3)))
            kind = rng.choice(["file", "file", "dir", "sym", "sym", "sym", "hard"])
            info = tarfile.TarInfo(member)
            if kind == "file":
                data = member.encode()
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
                continue
            if kind == "dir":
                info.type = tarfile.DIRTYPE
            else:
                info.type = tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE
                parts = [rng.choice([*names, "..", "..", ".", ""]) for _ in range(rng.randint(0, 5))]
                info.linkname = ("/" if rng.random() < 0.05 else "") + "/".join(parts)
            archive.addfile(info)
    return path


def test_random_link_archives_never_reach_outside(tmp_path: Path) -> None:
    rng = random.Random(1515)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("untouched")
    accepted = refused = 0
    for case in range(ARCHIVES):
        archive = _random_tar(rng, tmp_path / f"case{case}.tar")
        dest = tmp_path / "work" / f"d{case}"
        try:
            real_dest = unpack(archive, dest)
        except UnsafeArchive as exc:
            assert "\n" not in str(exc)
            assert not dest.exists()
            refused += 1
            continue
        accepted += 1
        for entry in real_dest.rglob("*"):
            real = Path(os.path.realpath(entry))
            assert real == real_dest or real.is_relative_to(real_dest), (case, entry, os.readlink(entry))
        assert sorted(p.name for p in outside.iterdir()) == ["keep"]
        assert (outside / "keep").read_text() == "untouched"
    print(f"unpack: {ARCHIVES} random link archives, {accepted} unpacked inside, {refused} refused")
    assert accepted and refused


# ---- publish: random spellings of one wheel's name


def wheel_identity(filename: str) -> object:
    """What pip makes of a wheel's name (computed here, independently of the code under test)."""
    return parse_wheel_filename(filename)


def _mutated_name(rng: random.Random) -> tuple[str, str, str]:
    """(file name, METADATA name, METADATA version) around demo 1.0."""
    project = rng.choice(
        ["demo", "DEMO", "Demo", "de.mo", "de_mo", "de-mo", "..", "...", "-", "demo.", ".demo"]
    )
    version = rng.choice(["1.0", "1.0.0", "1", "1.0.0.0", "01.0", "1.0-1", "1.0a", "v1.0", "1.0.post0", "x"])
    tag = rng.choice(["py3-none-any", "py2.py3-none-any", "PY3-none-any", "py3-none-any-extra", "py3-none"])
    build = rng.choice(["", "", "", "1-", "2x-"])
    meta_version = version if rng.random() < 0.8 else "2.0"
    return f"{project}-{version}-{build}{tag}.whl", project.strip(".-") or "demo", meta_version


def test_random_wheel_names_never_replace_or_escape(tmp_path: Path, run_cli) -> None:
    rng = random.Random(2718)
    root = tmp_path / "sub" / "index"
    published: dict[object, str] = {}  # identity -> sha256 of what the index serves
    codes = {0: 0, 2: 0}
    for case in range(FILE_NAMES):
        filename, name, version = _mutated_name(rng)
        folder = tmp_path / "wheels" / str(case)
        folder.mkdir(parents=True)
        wheel = folder / filename
        wheel.write_bytes(wheel_bytes(name, version, payload=f"# case {case}\n"))
        record = verify_record(tmp_path / "wheels" / f"{case}.json", [wheel])
        code = _one_line_or_ok(
            run_cli("publish", str(wheel), "--to", str(root), "--verified-by", str(record))
        )
        codes[code] += 1
        if code == 0:
            identity = wheel_identity(filename)
            assert identity not in published, f"{filename} replaced an earlier file in effect"
            published[identity] = hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub", "wheels"]
    if root.exists():
        assert check_index(root) == []
    listed: dict[object, str] = {}
    for page in (root / "simple").glob("*/index.json"):
        for item in json.loads(page.read_text())["files"]:
            identity = wheel_identity(item["filename"])
            assert identity not in listed, (
                f"{item['filename']} and {listed.get(identity)} are one file to pip"
            )
            listed[identity] = item["filename"]
            assert published[identity] == item["hashes"]["sha256"]
    print(f"publish: {FILE_NAMES} spellings, {codes[0]} accepted, {codes[2]} refused with one line")
    assert codes[0] and codes[2]


# ---- rewheel serve: random request targets


def test_random_requests_to_serve_stay_inside_and_never_traceback(tmp_path: Path) -> None:
    from helpers.synthetic import make_wheel

    root = tmp_path / "index"
    wheel = make_wheel(tmp_path / "w", "demo", "1.0")
    publish([wheel], str(root), verified={wheel: True})
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the web\n")
    os.symlink(tmp_path, root / "files" / "up")
    os.symlink(secret, root / "simple" / "secret")
    pieces = ["files", "simple", "demo", "up", "secret", "secret.txt", "..", "%2e%2e", "%2E.", ".rewheel",
              "lock", "%00", "%2f", "\\", "", ".", wheel.name, "index.json", "%ff", "..%2f..", "~"]  # fmt: skip
    rng = random.Random(314)
    host, port = "127.0.0.1", 0
    statuses: dict[int, int] = {}
    with rewheel_serve(root) as (server, base):
        host, port_text = base.removeprefix("http://").split(":")
        port = int(port_text)
        for _ in range(REQUESTS):
            path = "/" + "/".join(rng.choice(pieces) for _ in range(rng.randint(1, 5)))
            if rng.random() < 0.2:
                path += rng.choice(["/", "?format=json", "?format=../../x", "#x"])
            with socket.create_connection((host, port), timeout=30) as connection:
                connection.sendall(f"GET {path} HTTP/1.0\r\nAccept: */*\r\n\r\n".encode())
                response = b""
                while chunk := connection.recv(65536):
                    response += chunk
            status = int(response.split(b" ", 2)[1])
            statuses[status] = statuses.get(status, 0) + 1
            assert status in (200, 301, 400, 404, 406), (path, response[:300])
            assert b"not for the web" not in response, path
        log = server.log()
    assert "Traceback" not in log, log[-3000:]
    print(f"serve: {REQUESTS} random requests, statuses {dict(sorted(statuses.items()))}")


# ---- recipes


RECIPE = """name = "demo"
targets = ["manylinux_2_17_x86_64"]

[[source]]
version = "1.0"
kind = "sdist"
filename = "demo-1.0.tar.gz"
sha256 = "{zero}"
""".replace("{zero}", "0" * 64)


def _recipes_check(run_cli, *paths: Path) -> tuple[int, str, str]:
    return run_cli("recipes", "check", *map(str, paths))


@pytest.mark.parametrize(
    "content",
    [
        RECIPE.replace('"demo"', '"démo"').encode("latin-1"),
        RECIPE.encode("utf-16"),
        b"a = " + b"[" * 20000 + b"]" * 20000 + b"\n",
        b"[" + b".".join(b"t%d" % i for i in range(20000)) + b"]\nx = 1\n",
        b"a = " + b"{b = " * 5000 + b"1" + b"}" * 5000 + b"\n",
    ],
    ids=["latin-1", "utf-16", "nested-arrays", "nested-tables", "nested-inline-tables"],
)
def test_recipes_check_on_unreadable_or_deep_files_is_one_line_and_exit_2(
    tmp_path: Path, run_cli, content: bytes
) -> None:
    recipe = tmp_path / "recipes" / "demo.toml"
    recipe.parent.mkdir()
    recipe.write_bytes(content)
    code, _, err = _recipes_check(run_cli, recipe)
    assert code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("rewheel: error: "), err


def test_a_patch_that_links_outside_patches_is_an_error(tmp_path: Path, run_cli) -> None:
    outside = tmp_path / "elsewhere.patch"
    outside.write_text("--- a/x\n+++ b/x\n")
    sha = hashlib.sha256(outside.read_bytes()).hexdigest()
    recipe = tmp_path / "recipes" / "demo.toml"
    recipe.parent.mkdir()
    recipe.write_text(RECIPE + f'\n[[patch]]\nfile = "fix.patch"\nsha256 = "{sha}"\n')
    patches = tmp_path / "patches" / "demo"
    patches.mkdir(parents=True)
    (patches / "fix.patch").symlink_to(outside)
    code, _, err = _recipes_check(run_cli, recipe)
    assert code == 2 and "fix.patch" in err and "inside" in err, err
    (patches / "fix.patch").unlink()
    (patches / "fix.patch").write_bytes(outside.read_bytes())
    assert _recipes_check(run_cli, recipe)[0] == 0  # the same bytes as a real file are fine


def test_two_recipes_for_one_project_are_an_error(tmp_path: Path, run_cli) -> None:
    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / "my_pkg.toml").write_text(RECIPE.replace('"demo"', '"my_pkg"'))
    (folder / "my-pkg.toml").write_text(RECIPE.replace('"demo"', '"my-pkg"'))
    code, _, err = _recipes_check(run_cli, folder)
    assert code == 2 and "same project" in err, err


def test_random_recipe_mutations_never_traceback(tmp_path: Path, run_cli) -> None:
    rng = random.Random(1729)
    base = RECIPE.encode()
    codes = {0: 0, 2: 0}
    for case in range(RECIPE_MUTATIONS):
        data = bytearray(base)
        for _ in range(rng.randint(1, 6)):
            position = rng.randrange(len(data))
            action = rng.random()
            if action < 0.4:
                data[position] = rng.randrange(256)
            elif action < 0.7:
                data[position:position] = rng.choice(
                    [b"[", b"]", b"{", b'"', b"\x00", b"\xff", b"=", b"\n[a]\n"]
                )
            else:
                del data[position : position + rng.randint(1, 8)]
        recipe = tmp_path / f"r{case}" / "recipes" / "demo.toml"
        recipe.parent.mkdir(parents=True)
        recipe.write_bytes(bytes(data))
        codes[_one_line_or_ok(_recipes_check(run_cli, recipe))] += 1
    print(f"recipes: {RECIPE_MUTATIONS} mutations, {codes[0]} valid, {codes[2]} refused with one line each")
    assert codes[2]


# ---- issue #24, Low list: one line and exit 2, never a traceback

LONG = "a" * 5000


def _one_line_exit_2(result: tuple[int, str, str]) -> str:
    code, _, err = result
    assert code == 2 and "Traceback" not in err, err[-2000:]
    lines = [line for line in err.strip().splitlines() if line.startswith("rewheel: error: ")]
    assert len(lines) == 1 and err.strip().endswith(lines[0]), err[-2000:]  # progress lines may precede it
    return lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ("publish", f"{LONG}.whl", "--to", "{tmp}/index"),
        ("publish", "{tmp}/demo-1.0-py3-none-any.whl", "--to", "{tmp}/" + LONG),
        ("verify", f"{LONG}.whl", "-t", "musllinux_1_2_x86_64"),
        ("smoke", f"{LONG}.whl"),
        ("yank", f"{LONG}.whl", "--index", "{tmp}/index"),
        ("ensurepip", LONG),
        ("profiles", "capture-pe", "{tmp}", "--name", LONG),
        ("recipe", "new", f"{LONG}==1.0", "-o", "{tmp}", "--recipes", "{tmp}"),
    ],
    ids=["publish", "publish-to", "verify", "smoke", "yank", "ensurepip", "capture-pe", "recipe-new"],
)
def test_long_names_and_devices_are_one_line_and_exit_2(
    tmp_path: Path, run_cli, args: tuple[str, ...]
) -> None:
    from helpers.synthetic import make_wheel

    wheel = make_wheel(tmp_path, "demo", "1.0")
    publish([wheel], str(tmp_path / "index"), verified={wheel: True})
    _one_line_exit_2(run_cli(*(a.replace("{tmp}", str(tmp_path)) for a in args)))


def test_recipes_check_of_a_device_is_one_line_and_exit_2() -> None:
    """`recipes check /dev/zero` read until memory ran out; run in a child with its memory and time capped
    so that a regression fails here instead of taking the machine with it."""
    import resource
    import subprocess
    import sys

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "recipes", "check", "/dev/zero"],
        capture_output=True, text=True, timeout=120, preexec_fn=cap,
    )  # fmt: skip
    line = _one_line_exit_2((result.returncode, result.stdout, result.stderr))
    assert "not a regular file" in line


def test_capture_pe_name_cannot_leave_out(tmp_path: Path, run_cli) -> None:
    out = tmp_path / "deep" / "out"
    line = _one_line_exit_2(
        run_cli("profiles", "capture-pe", str(tmp_path), "--name", "../x", "--out", str(out))
    )
    assert "profile name" in line
    assert sorted(p.name for p in tmp_path.rglob("*x*")) == [], "capture-pe wrote outside --out"


def _nested_json_page(root: Path) -> None:
    page = root / "simple" / "demo" / "index.json"
    page.write_text('{"files": ' + "[" * 100_000 + "]" * 100_000 + "}")


def test_deeply_nested_json_pages_are_one_line_and_exit_2(tmp_path: Path, run_cli) -> None:
    from helpers.synthetic import make_wheel

    root = tmp_path / "index"
    wheel = make_wheel(tmp_path / "w", "demo", "1.0")
    publish([wheel], str(root), verified={wheel: True})
    _nested_json_page(root)
    other = make_wheel(tmp_path / "w2", "demo", "2.0")
    record = verify_record(tmp_path / "record.json", [other])
    for args in (
        ("index", "check", str(root)),
        ("publish", str(other), "--to", str(root), "--verified-by", str(record)),
        ("index", "rebuild", str(root)),
    ):
        code, _, err = run_cli(*args)
        # rebuild starts from the files alone, so it may repair the page: then exit 0
        if not (args[1] == "rebuild" and code == 0):
            _one_line_exit_2((code, "", err))


@pytest.mark.parametrize("host", ["0.0.0.0x", "127.0.0.1"])
def test_serve_on_a_bad_host_or_a_port_in_use_is_one_line(tmp_path: Path, host: str) -> None:
    import subprocess
    import sys

    (tmp_path / "index" / "simple").mkdir(parents=True)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1] if host == "127.0.0.1" else 0
        result = subprocess.run(
            [sys.executable, "-m", "pipeline", "serve", str(tmp_path / "index"), "--host", host, "--port", str(port)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert (
        result.stderr.startswith("rewheel: error: cannot listen on") and len(result.stderr.splitlines()) == 1
    )


def _serve_thread(root: Path, **options: object):  # type: ignore[no-untyped-def]
    import threading

    from pipeline.index.server import make_server

    server = make_server(root, **options)  # type: ignore[arg-type]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, int(server.server_address[1])


def _status_of(port: int, request: bytes, timeout: float = 30) -> int | None:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(request)
        head = connection.recv(64)
    return int(head.split(b" ", 2)[1]) if head else None


def test_serve_answers_a_path_segment_over_255_bytes_with_404(tmp_path: Path) -> None:
    from helpers.synthetic import make_wheel

    root = tmp_path / "index"
    wheel = make_wheel(tmp_path / "w", "demo", "1.0")
    publish([wheel], str(root), verified={wheel: True})
    server, port = _serve_thread(root)
    try:
        for path in ("/simple/" + "a" * 300 + "/", "/files/demo/" + "b" * 256, "/" + "c" * 5000):
            assert _status_of(port, f"GET {path} HTTP/1.0\r\n\r\n".encode()) == 404, path
        assert _status_of(port, b"GET /simple/demo/ HTTP/1.0\r\n\r\n") == 200
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_serve_drops_slow_clients_so_20_of_them_cannot_hold_its_16_workers(tmp_path: Path) -> None:
    """Slowloris: 20 clients each sending one byte of a request every 4 s (never tripping a per-read
    timeout). Each is dropped a few seconds after a worker takes it, and a real request made meanwhile is
    answered within seconds, not after the 60 s the slow clients would like to hold the workers."""
    import threading
    import time

    from helpers.synthetic import make_wheel

    root = tmp_path / "index"
    wheel = make_wheel(tmp_path / "w", "demo", "1.0")
    publish([wheel], str(root), verified={wheel: True})
    server, port = _serve_thread(root, workers=16)
    request = b"GET /simple/demo/ HTTP/1.0\r\nAccept: text/html\r\nX-Slow: " + b"x" * 100 + b"\r\n\r\n"
    dropped_after: list[float] = []
    stop = threading.Event()

    def slow_client() -> None:
        start = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=60) as connection:
            for byte in request:
                try:
                    connection.sendall(bytes([byte]))
                except OSError:
                    break
                connection.settimeout(4)
                try:
                    if connection.recv(1) == b"":
                        break
                except TimeoutError:
                    pass  # still held open by the server: send the next byte
                if stop.is_set():
                    return
        dropped_after.append(time.monotonic() - start)

    clients = [threading.Thread(target=slow_client, daemon=True) for _ in range(20)]
    try:
        for client in clients:
            client.start()
        time.sleep(1)
        started = time.monotonic()
        assert _status_of(port, b"GET /simple/demo/ HTTP/1.0\r\n\r\n", timeout=60) == 200
        answered_in = time.monotonic() - started
        for client in clients:
            client.join(timeout=60)
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
    print(f"slowloris: a real request answered in {answered_in:.1f} s; slow clients dropped after "
          f"{min(dropped_after):.1f}-{max(dropped_after):.1f} s")  # fmt: skip
    assert answered_in < 15
    assert len(dropped_after) == 20 and max(dropped_after) < 20


# ---- issue #24 items 7 and 8: --verified-by is a verdict on bytes; local versions are refused


def test_a_wheel_changed_after_verify_is_refused(tmp_path: Path, run_cli) -> None:
    """The record is the real `rewheel verify --json`; then a `../../evil.pth` member is added to the wheel
    (same name): publish refuses it, and publishes the wheel as verified."""
    import zipfile

    from helpers.synthetic import make_wheel

    wheel = make_wheel(tmp_path / "w", "demo", "1.0")
    code, out, err = run_cli("verify", str(wheel), "-t", "musllinux_1_2_x86_64", "--json")
    assert code == 0, err
    record = tmp_path / "verify.json"
    record.write_text(out)
    assert json.loads(out)["results"][0]["sha256"] == hashlib.sha256(wheel.read_bytes()).hexdigest()
    original = wheel.read_bytes()
    with zipfile.ZipFile(wheel, "a") as archive:
        archive.writestr("../../evil.pth", "import os\n")
    root = tmp_path / "index"
    line = _one_line_exit_2(run_cli("publish", str(wheel), "--to", str(root), "--verified-by", str(record)))
    assert "changed since it was verified" in line
    assert not root.exists()
    wheel.write_bytes(original)
    assert run_cli("publish", str(wheel), "--to", str(root), "--verified-by", str(record))[0] == 0


def test_a_record_without_hashes_is_no_verdict(tmp_path: Path, run_cli) -> None:
    from helpers.synthetic import make_wheel

    wheel = make_wheel(tmp_path / "w", "demo", "1.0")
    record = tmp_path / "old.json"
    record.write_text(
        json.dumps({"results": [{"wheel": wheel.name, "target": "any", "ok": True, "findings": []}]})
    )
    line = _one_line_exit_2(
        run_cli("publish", str(wheel), "--to", str(tmp_path / "index"), "--verified-by", str(record))
    )
    assert "no sha256 recorded" in line


def test_local_versions_are_refused_so_they_cannot_stand_in_for_a_release(tmp_path: Path, run_cli) -> None:
    from helpers.synthetic import make_wheel

    root = tmp_path / "index"
    release = make_wheel(tmp_path / "a", "demo", "1.0")
    local = make_wheel(tmp_path / "b", "demo", "1.0+local", payload="# other bytes\n")
    assert run_cli("publish", str(release), "--to", str(root), "--verified-by",
                   str(verify_record(tmp_path / "a.json", [release])))[0] == 0  # fmt: skip
    line = _one_line_exit_2(
        run_cli(
            "publish",
            str(local),
            "--to",
            str(root),
            "--verified-by",
            str(verify_record(tmp_path / "b.json", [local])),
        )
    )
    assert "local versions" in line
    assert sorted(p.name for p in (root / "files" / "demo").glob("*.whl")) == [release.name]


# ---- issue #24 item 5: verify's work is bounded, whatever a binary's tables say


def _elf_with_rpath_entries(so: bytes, entries: int, path_list: bytes) -> bytes:
    """A 64-bit little-endian ELF whose .dynamic is replaced by `entries` DT_RPATH entries that all name one
    string, `path_list` (appended to a copy of .dynstr), both appended to the file."""
    (shoff,) = struct.unpack_from("<Q", so, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", so, 0x3A)
    header = struct.Struct("<IIQQQQIIQQ")
    sections = [header.unpack_from(so, shoff + i * shentsize) for i in range(shnum)]
    dynamic = next(i for i, s in enumerate(sections) if s[1] == 6)
    dynstr = sections[dynamic][6]
    out = bytearray(so)
    strings = so[sections[dynstr][4] : sections[dynstr][4] + sections[dynstr][5]]
    new_strings_at, string_offset = len(out), len(strings)
    out += strings + path_list + b"\0"
    out += b"\0" * (-len(out) % 8)
    new_dynamic_at = len(out)
    out += struct.pack("<qQ", 15, string_offset) * entries + struct.pack("<qQ", 0, 0)  # DT_RPATH, DT_NULL
    for index, offset, size in (
        (dynstr, new_strings_at, len(strings) + len(path_list) + 1),
        (dynamic, new_dynamic_at, 16 * (entries + 1)),
    ):
        struct.pack_into("<QQ", out, shoff + index * shentsize + 24, offset, size)  # sh_offset, sh_size
    return bytes(out)


def _verify_capped(wheel: Path, target: str) -> tuple[int, str, str, float]:
    """`rewheel verify` in a child capped at 2 GiB and 120 s: a regression fails this test, not the machine."""
    import resource
    import subprocess
    import sys
    import time

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    started = time.monotonic()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pipeline", "verify", str(wheel), "-t", target],
            capture_output=True, text=True, timeout=120, preexec_fn=cap,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail(f"verify of {wheel.name} ran for more than 120 s")
    return result.returncode, result.stdout, result.stderr, time.monotonic() - started


@pytest.mark.parametrize(
    ("entries", "path_list", "bound"),
    [
        (48_000, b":".join([b"/x"] * 20_000), "more than 1024 paths"),
        (5_000, b"", "dynamic section has more than 4096 entries"),
        (200, b"/" + b"x" * 60_000, "more string bytes than its string table holds"),
    ],
    ids=["issue-reproduction", "entries", "string-bytes"],
)
def test_verify_bounds_the_dynamic_section(
    tmp_path: Path, pypi_file, entries: int, path_list: bytes, bound: str
) -> None:
    """The issue's reproduction: one .so with 48,000 DT_RPATH entries pointing at one string (here a list
    of 20,000 paths), in a wheel of a few KB, used 2.84 GB and passed as ok. Each bound also holds alone."""
    from helpers.wheels import MARKUPSAFE_X86, members_of, write_wheel

    base = pypi_file(*MARKUPSAFE_X86)
    members = members_of(base)
    so = next(n for n in members if n.endswith(".so"))
    crafted = _elf_with_rpath_entries(members[so], entries, path_list)
    wheel = write_wheel(tmp_path / base.name, {**members, so: crafted})
    code, out, err, seconds = _verify_capped(wheel, "manylinux_2_17_x86_64")
    line = _one_line_exit_2((code, out, err))
    assert "malformed ELF file" in line and bound in line, line
    print(
        f"verify: {wheel.stat().st_size}-byte wheel, {entries} DT_RPATH entries: refused in {seconds:.1f} s"
    )


def _pe_with_import_table(pyd: bytes, dll_names: list[bytes], functions: int) -> bytes:
    """The PE with its import directory replaced: one descriptor per name in `dll_names`, all sharing one
    lookup table of `functions` entries naming one function, in the enlarged last section (.reloc)."""
    import pefile

    pe = pefile.PE(data=pyd, fast_load=True)
    last = pe.sections[-1]
    base_rva, base_offset = last.VirtualAddress, last.PointerToRawData
    region = bytearray(struct.pack("<H", 0) + b"GetTickCount\0")
    region += b"\0" * (-len(region) % 16)
    thunks_rva = base_rva + len(region)
    region += struct.pack("<Q", base_rva) * functions + b"\0" * 8
    name_rvas = []
    for name in dll_names:
        name_rvas.append(base_rva + len(region))
        region += name + b"\0"
    region += b"\0" * (-len(region) % 16)
    descriptors_rva = base_rva + len(region)
    for rva in name_rvas:
        region += struct.pack("<IIIII", thunks_rva, 0, 0, rva, thunks_rva)
    region += b"\0" * 20
    region += b"\0" * (-len(region) % 512)
    out = bytearray(pyd[:base_offset]) + region
    section = last.get_file_offset()
    struct.pack_into("<IIII", out, section + 8, len(region), base_rva, len(region), base_offset)
    directories = pe.OPTIONAL_HEADER.DATA_DIRECTORY
    struct.pack_into("<II", out, directories[1].get_file_offset(), descriptors_rva, 20 * (len(dll_names) + 1))
    struct.pack_into("<II", out, directories[5].get_file_offset(), 0, 0)  # no relocations: .reloc is ours now
    struct.pack_into("<I", out, pe.OPTIONAL_HEADER.get_file_offset() + 56, base_rva + len(region) + 0x1000)
    pe.close()
    return bytes(out)


@pytest.mark.parametrize(
    ("dlls", "functions", "bound"),
    [
        ([b"KERNEL32.dll", b"kernel32.DLL"], 100_000, "lists more than"),
        ([b"api-ms-win-core-x%d-l1-1-0.dll" % i for i in range(2_000)], 1, "imports from more than"),
    ],
    ids=["functions-per-dll", "dlls"],
)
def test_verify_bounds_import_tables(
    tmp_path: Path, pypi_file, dlls: list[bytes], functions: int, bound: str
) -> None:
    """A win_amd64 wheel of a few KB whose .pyd's import table lists 200,000 functions, or 2,000 DLLs (they
    passed before, as ok or as 2,000 findings): each is a malformed binary, refused in seconds."""
    from helpers.wheels import MARKUPSAFE_WIN, members_of, write_wheel

    base = pypi_file(*MARKUPSAFE_WIN)
    members = members_of(base)
    pyd = next(n for n in members if n.endswith(".pyd"))
    wheel = write_wheel(
        tmp_path / base.name, {**members, pyd: _pe_with_import_table(members[pyd], dlls, functions)}
    )
    code, out, err, seconds = _verify_capped(wheel, "win_amd64")
    line = _one_line_exit_2((code, out, err))
    assert "malformed PE file" in line and bound in line, line
    assert seconds < 60


# ---- issue #24 item 10: fetch follows only http(s) links, bounded, and leaves nothing partial


class _HostileIndex:
    """An index on 127.0.0.1 whose page for `demo` lists `files` (PEP 691 JSON); /stream/<n> sends n bytes
    of zeros, /endless sends zeros until the client goes away."""

    def __init__(self, files: list[dict[str, object]]) -> None:
        import http.server
        import threading

        index = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/simple/demo/":
                    body = index.raw_page or json.dumps(
                        {"meta": {"api-version": "1.1"}, "files": index.files}
                    )
                    self.send_response(200)
                    self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
                    self.end_headers()
                    self.wfile.write(body.encode())
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                left = int(self.path.rsplit("/", 1)[1]) if self.path.startswith("/stream/") else 1 << 40
                try:
                    while left > 0:
                        chunk = min(left, 1 << 16)
                        self.wfile.write(b"\0" * chunk)
                        left -= chunk
                except OSError:
                    pass  # the client stopped reading

        self.files = files
        self.raw_page = ""  # sent instead of the JSON of `files` when set
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize(
    ("link", "size", "limit", "refusal"),
    [
        ("file:///dev/zero", None, None, "only http(s) is followed"),
        ("file:///etc/passwd", None, None, "only http(s) is followed"),
        ("{base}/endless", None, 1 << 20, "larger than 1048576 bytes"),
        ("{base}/stream/200000", 1000, None, "larger than the 1000 bytes the index states"),
        ("{base}/stream/500", 1000, None, "500 bytes, the index states 1000"),
    ],
    ids=["dev-zero", "local-file", "endless", "over-stated-size", "short-of-stated-size"],
)
def test_fetch_follows_only_http_links_within_bounds_and_leaves_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    link: str,
    size: int | None,
    limit: int | None,
    refusal: str,
) -> None:
    from pipeline.errors import FetchError
    from pipeline.fetch import Pin, fetch

    payload = b"\0" * 500
    digest = hashlib.sha256(payload).hexdigest()
    index = _HostileIndex([])
    try:
        entry: dict[str, object] = {"filename": "demo-1.0.tar.gz", "url": link.replace("{base}", index.base)}
        if size is not None:
            entry["size"] = size
        index.files.append(entry)
        monkeypatch.setenv("PIP_INDEX_URL", f"{index.base}/simple/")
        monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
        if limit is not None:
            monkeypatch.setenv("REWHEEL_MAX_DOWNLOAD_BYTES", str(limit))
        cache = tmp_path / "cache"
        with pytest.raises(FetchError) as refused:
            fetch(Pin(filename="demo-1.0.tar.gz", sha256=digest, project="demo", version="1.0"), cache)
    finally:
        index.close()
    assert refusal in str(refused.value) and "\n" not in str(refused.value), refused.value
    assert [p for p in cache.rglob("*") if p.is_file()] == [], "a partial download stayed in the cache"


def test_fetch_of_a_stated_size_that_matches_is_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same server, an honest entry: the bounds do not get in the way of a real download."""
    from pipeline.fetch import Pin, fetch

    digest = hashlib.sha256(b"\0" * 500).hexdigest()
    index = _HostileIndex([])
    try:
        index.files.append({"filename": "demo-1.0.tar.gz", "url": f"{index.base}/stream/500", "size": 500})
        monkeypatch.setenv("PIP_INDEX_URL", f"{index.base}/simple/")
        monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
        path = fetch(Pin(filename="demo-1.0.tar.gz", sha256=digest, project="demo", version="1.0"), tmp_path)
    finally:
        index.close()
    assert path.read_bytes() == b"\0" * 500
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["demo-1.0.tar.gz"]


# ---- issue #24 item 6: a hostile upload server


class _HostileUploadServer:
    """An upload server on 127.0.0.1 (the legacy upload API twine speaks, and a PEP 503 page per project)
    whose page and upload answers are chosen by the test: `page` is "listing" (the files it stored),
    "huge" (80 MiB), "trickle" (a byte every 5 s) or "reset" (the connection closed unanswered); `upload`
    is "store", "forget" (200, nothing stored) or "fail-N" (500 for the first N uploads, then store)."""

    def __init__(self, page: str = "listing", upload: str = "store") -> None:
        import http.server
        import re
        import threading

        state = self
        self.page, self.upload = page, upload
        self.stored: dict[str, str] = {}
        self.posts = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if state.page == "reset":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                if state.page == "nested":
                    body = b'{"files": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
                    self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if state.page == "huge":
                    self.end_headers()
                    with contextlib.suppress(OSError):
                        for _ in range(80 * 16):
                            self.wfile.write(b"<!-- padding -->" * 4096)
                    return
                if state.page == "trickle":
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    with contextlib.suppress(OSError):
                        for _ in range(100):
                            self.wfile.write(b" ")
                            self.wfile.flush()
                            time.sleep(5)
                    return
                links = "".join(f'<a href="/files/{n}#sha256={h}">{n}</a>\n' for n, h in state.stored.items())
                body = f"<!DOCTYPE html><html><body>\n{links}</body></html>".encode()
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                state.posts += 1
                if state.upload.startswith("fail-") and state.posts <= int(state.upload[5:]):
                    self.send_response(500, "Internal Server Error")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if state.upload != "forget":
                    filename = re.search(rb'filename="([^"]+)"', body)
                    digest = re.search(rb'name="sha256_digest"\r\n\r\n([0-9a-f]{64})', body)
                    assert filename and digest, body[:2000]
                    state.stored[filename.group(1).decode()] = digest.group(1).decode()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _publish_to(
    server: _HostileUploadServer, tmp_path: Path
) -> tuple[subprocess.CompletedProcess[str], float]:
    from helpers.synthetic import make_wheel

    wheel = make_wheel(tmp_path / "w", "demo", "1.0")
    record = verify_record(tmp_path / "ok.json", [wheel])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWINE_", "REWHEEL_INDEX_"))}
    env.update(REWHEEL_INDEX_USERNAME="publisher", REWHEEL_INDEX_PASSWORD="not-a-real-secret")
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "publish", str(wheel), "--to", server.url, "--verified-by", str(record), "--json"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    return result, time.monotonic() - started


@pytest.mark.parametrize(
    ("page", "refusal"),
    [("huge", "larger than"), ("reset", "cannot read the project's page"), ("nested", "not a PEP 691 page")],
)
def test_upload_refuses_when_the_page_cannot_be_read(tmp_path: Path, page: str, refusal: str) -> None:
    """An 80 MiB page is not read whole, and a page that cannot be read stops the upload: without it the
    immutability check cannot be made."""
    server = _HostileUploadServer(page=page)
    try:
        result, _ = _publish_to(server, tmp_path)
    finally:
        server.close()
    line = _one_line_exit_2((result.returncode, result.stdout, result.stderr))
    assert refusal in line, line
    assert server.posts == 0, "uploaded without the immutability check"


@pytest.mark.slow
def test_upload_gives_up_on_a_page_sent_a_byte_every_5_seconds(tmp_path: Path) -> None:
    server = _HostileUploadServer(page="trickle")
    try:
        result, seconds = _publish_to(server, tmp_path)
    finally:
        server.close()
    line = _one_line_exit_2((result.returncode, result.stdout, result.stderr))
    assert "not read within" in line and seconds < 45, (line, seconds)
    assert server.posts == 0
    print(f"upload: a trickling page given up after {seconds:.1f} s, nothing uploaded")


def test_an_upload_the_server_does_not_list_is_unconfirmed_exit_1(tmp_path: Path) -> None:
    server = _HostileUploadServer(upload="forget")
    try:
        result, _ = _publish_to(server, tmp_path)
    finally:
        server.close()
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert json.loads(result.stdout)["files"][0]["status"] == "unconfirmed"
    assert "unconfirmed" in result.stderr.strip().splitlines()[-1]


def test_an_upload_answered_500_is_retried_with_backoff_and_confirmed(tmp_path: Path) -> None:
    """Seven 500s: more than twine's own quick retries (5), so rewheel's backoff has to try again."""
    server = _HostileUploadServer(upload="fail-7")
    try:
        result, _ = _publish_to(server, tmp_path)
    finally:
        server.close()
    assert result.returncode == 0, result.stderr
    (item,) = json.loads(result.stdout)["files"]
    assert item["status"] == "uploaded" and item["attempts"] == 2 and server.posts == 8, (item, server.posts)
    assert "retrying in" in result.stderr
    assert list(server.stored) == ["demo-1.0-py3-none-any.whl"]


@pytest.mark.parametrize(
    "members",
    [
        {"demo": b"a file", "demo-1.0.data/purelib/demo/__init__.py": b""},
        {"demo/__init__.py": b"", "demo-1.0.data/purelib/demo/__init__.py": b"# other\n"},
        {"demo/__init__.py": b"", "demo-1.0.data/platlib/demo": b"a file"},
    ],
    ids=["folder-over-file", "file-over-file", "file-over-folder"],
)
def test_smoke_refuses_a_data_entry_colliding_with_a_top_level_one(
    tmp_path: Path, run_cli, members: dict[str, bytes]
) -> None:
    from helpers.synthetic import wheel_bytes
    from helpers.wheels import members_of, write_wheel

    base = tmp_path / "base" / "demo-1.0-py3-none-any.whl"
    base.parent.mkdir()
    base.write_bytes(wheel_bytes("demo", "1.0"))
    kept = {k: v for k, v in members_of(base).items() if ".dist-info/" in k}
    wheel = write_wheel(tmp_path / "demo-1.0-py3-none-any.whl", {**members, **kept})
    line = _one_line_exit_2(run_cli("smoke", str(wheel)))
    assert "installed twice" in line, line


def test_fetch_from_an_index_page_nested_deeply_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli
) -> None:
    recipe = tmp_path / "recipes" / "demo.toml"
    recipe.parent.mkdir()
    recipe.write_text(RECIPE)
    index = _HostileIndex([])
    index.raw_page = '{"files": ' + "[" * 100_000 + "]" * 100_000 + "}"
    monkeypatch.setenv("PIP_INDEX_URL", f"{index.base}/simple/")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    monkeypatch.setenv("REWHEEL_CACHE_DIR", str(tmp_path / "cache"))
    try:
        line = _one_line_exit_2(run_cli("fetch", str(recipe)))
    finally:
        index.close()
    assert "nested too deeply" in line or "file list failed" in line, line


def test_fetch_of_a_file_url_reads_regular_files_only(tmp_path: Path) -> None:
    from pipeline.errors import FetchError
    from pipeline.fetch import Pin, fetch

    with pytest.raises(FetchError, match="not a regular file"):
        fetch(Pin(filename="zero.tar.gz", sha256="0" * 64, url="file:///dev/zero"), tmp_path / "cache")
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []
    local = tmp_path / "demo-1.0.tar.gz"
    local.write_bytes(b"local index file")
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    path = fetch(Pin(filename=local.name, sha256=digest, url=local.as_uri()), tmp_path / "cache")
    assert path.read_bytes() == b"local index file"
