"""A bounded hostile-input run that keeps issue #15's findings fixed: random but seeded inputs (fixed seeds,
counted cases, loopback only) against unpack, publish, `rewheel serve` and `recipes check`, plus the
recipe cases that were accepted although wrong.

Each run asserts the promises, not particular outcomes: an input is either accepted or refused with one
line and exit 2 (never a traceback); nothing is written or served outside its folder; nothing published
is replaced in effect.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import socket
import tarfile
from pathlib import Path

import pytest
from packaging.utils import parse_wheel_filename

from pipeline.errors import UnsafeArchive
from pipeline.index import publish
from pipeline.index.static import check_index
from pipeline.index.synthetic import wheel_bytes
from pipeline.unpack import unpack
from test_index_support import rewheel_serve, verify_record

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
    from pipeline.index.synthetic import make_wheel

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
