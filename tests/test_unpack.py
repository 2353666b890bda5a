"""Safe unpacking: zip slip, absolute paths, links pointing out, bombs, all refused with nothing written outside."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from pipeline.errors import UnsafeArchive
from pipeline.unpack import Limits, unpack


def make_zip(path: Path, members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o120777 << 16
            zf.writestr(info, target)
    return path


def make_tar(path: Path, build) -> Path:  # type: ignore[no-untyped-def]
    with tarfile.open(path, "w:gz") as tf:
        build(tf)
    return path


def add_file(tf: tarfile.TarFile, name: str, data: bytes = b"x") -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def add_link(tf: tarfile.TarFile, name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    tf.addfile(info)


def files_under(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


@pytest.fixture
def sandbox(tmp_path: Path) -> tuple[Path, Path]:
    """(dest, outside): the destination and a sibling folder nothing may touch."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("untouched")
    return tmp_path / "dest", outside


def assert_refused(archive: Path, dest: Path, outside: Path, match: str) -> None:
    with pytest.raises(UnsafeArchive, match=match):
        unpack(archive, dest)
    assert files_under(outside) == {"keep.txt"} and (outside / "keep.txt").read_text() == "untouched"
    assert not dest.exists(), "a refused archive must leave no partial destination"


def test_good_wheel_and_sdist_unpack(tmp_path: Path) -> None:
    wheel = make_zip(tmp_path / "w-1-py3-none-any.whl", {"w/__init__.py": b"", "w-1.dist-info/RECORD": b""})
    assert files_under(unpack(wheel, tmp_path / "w")) == {
        "w",
        "w/__init__.py",
        "w-1.dist-info",
        "w-1.dist-info/RECORD",
    }

    def build(tf: tarfile.TarFile) -> None:
        add_file(tf, "pkg-1/setup.py", b"print()")
        add_link(tf, "pkg-1/alias.py", "setup.py")  # an internal link is fine

    sdist = make_tar(tmp_path / "pkg-1.tar.gz", build)
    out = unpack(sdist, tmp_path / "s")
    assert (out / "pkg-1" / "alias.py").read_text() == "print()"


@pytest.mark.parametrize(
    "name", ["../escape.txt", "a/../../escape.txt", "/tmp/abs-escape.txt", "C:/win.txt", "..\\win.txt"]
)
def test_zip_slip_and_absolute_paths_refused(sandbox: tuple[Path, Path], tmp_path: Path, name: str) -> None:
    dest, outside = sandbox
    archive = make_zip(tmp_path / "bad.zip", {"ok.txt": b"fine", name: b"pwned"})
    assert_refused(archive, dest, outside, "escapes|absolute")
    assert not Path("/tmp/abs-escape.txt").exists()


def test_zip_symlink_member_refused(sandbox: tuple[Path, Path], tmp_path: Path) -> None:
    dest, outside = sandbox
    archive = make_zip(tmp_path / "link.whl", {}, symlinks={"pkg/evil": str(outside)})
    assert_refused(archive, dest, outside, "symbolic link")


def test_tar_symlink_out_then_write_through_it_refused(sandbox: tuple[Path, Path], tmp_path: Path) -> None:
    dest, outside = sandbox

    def build(tf: tarfile.TarFile) -> None:
        add_link(tf, "pkg/out", str(outside))
        add_file(tf, "pkg/out/keep.txt", b"overwritten")

    assert_refused(make_tar(tmp_path / "a.tar.gz", build), dest, outside, "outside|link")


def test_tar_relative_symlink_escape_refused(sandbox: tuple[Path, Path], tmp_path: Path) -> None:
    dest, outside = sandbox

    def build(tf: tarfile.TarFile) -> None:
        add_file(tf, "pkg/setup.py")
        add_link(tf, "pkg/up", "../../outside/keep.txt")

    assert_refused(make_tar(tmp_path / "b.tar.gz", build), dest, outside, "points outside")


def test_tar_hardlink_escape_and_devices_refused(sandbox: tuple[Path, Path], tmp_path: Path) -> None:
    dest, outside = sandbox

    def hard(tf: tarfile.TarFile) -> None:
        add_link(tf, "pkg/h", "../outside/keep.txt", kind=tarfile.LNKTYPE)

    assert_refused(make_tar(tmp_path / "c.tar.gz", hard), dest, outside, "outside")

    def device(tf: tarfile.TarFile) -> None:
        info = tarfile.TarInfo("pkg/null")
        info.type = tarfile.CHRTYPE
        tf.addfile(info)

    assert_refused(make_tar(tmp_path / "d.tar.gz", device), dest, outside, "special file")


def test_size_limits_and_zip_bomb(sandbox: tuple[Path, Path], tmp_path: Path) -> None:
    dest, outside = sandbox
    bomb = make_zip(tmp_path / "bomb.zip", {"zeros.bin": b"\0" * (8 << 20)})
    assert_refused(bomb, dest, outside, "zip bomb")
    small = make_zip(tmp_path / "big.zip", {"a.bin": os.urandom(4096)})
    with pytest.raises(UnsafeArchive, match="exceed"):
        unpack(small, tmp_path / "d2", Limits(max_total_bytes=1024))


def test_corrupt_archive_is_unsafe_not_traceback(tmp_path: Path) -> None:
    junk = tmp_path / "junk.whl"
    junk.write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(UnsafeArchive, match="not a readable zip"):
        unpack(junk, tmp_path / "out")
    truncated = tmp_path / "t.tar.gz"
    truncated.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(UnsafeArchive):
        unpack(truncated, tmp_path / "out2")


def test_cli_fetch_rejects_bad_recipe_with_exit_2(tmp_path: Path) -> None:
    recipe = tmp_path / "recipes" / "x.toml"
    recipe.parent.mkdir()
    recipe.write_text("name = 'x'\n")
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "fetch", str(recipe)], capture_output=True, text=True
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def _inside(dest: Path, path: Path) -> bool:
    real = Path(os.path.realpath(path))
    return real == dest or real.is_relative_to(dest)


def test_tar_link_chain_through_an_earlier_link_refused(sandbox: tuple[Path, Path], tmp_path: Path) -> None:
    """l1 stays inside on paper, l2 and l3 point through it: checked one at a time as text they pass, but
    on disk l2 -> l1/.. resolves above the destination. Links to links are refused."""
    dest, outside = sandbox

    def build(tf: tarfile.TarFile) -> None:
        add_file(tf, "a/b/setup.py")
        add_link(tf, "a/b/l1", "../..")
        add_link(tf, "a/b/l2", "l1/..")
        add_link(tf, "a/b/l3", "l1/../../../..")

    assert_refused(make_tar(tmp_path / "chain.tar.gz", build), dest, outside, "through another link")


def test_tar_link_chain_declared_before_its_link_refused(sandbox: tuple[Path, Path], tmp_path: Path) -> None:
    dest, outside = sandbox

    def build(tf: tarfile.TarFile) -> None:
        add_link(tf, "a/b/l2", "l1/../../..")  # names l1 before the archive defines it
        add_link(tf, "a/b/l1", "..")

    assert_refused(make_tar(tmp_path / "later.tar.gz", build), dest, outside, "through another link")


def test_tar_links_inside_still_work(tmp_path: Path) -> None:
    def build(tf: tarfile.TarFile) -> None:
        add_file(tf, "pkg/src/real.py", b"print(1)\n")
        add_link(tf, "pkg/alias.py", "src/real.py")
        add_link(tf, "pkg/src/up", "..")
        add_link(tf, "pkg/copy.py", "pkg/src/real.py", tarfile.LNKTYPE)

    dest = unpack(make_tar(tmp_path / "ok.tar.gz", build), tmp_path / "dest")
    assert (dest / "pkg/alias.py").read_bytes() == b"print(1)\n"
    assert (dest / "pkg/copy.py").read_bytes() == b"print(1)\n" and not (dest / "pkg/copy.py").is_symlink()
    assert all(_inside(dest, p) for p in dest.rglob("*"))


@pytest.mark.parametrize(
    ("members", "match"),
    [
        ([("dir", "pkg/sub"), ("file", "pkg/sub/a.py"), ("sym", "pkg/sub", "a.py")], "replace a folder"),
        ([("sym", "pkg/d", "missing"), ("sym", "pkg/d/x", "y")], "written through the link"),
        ([("sym", "pkg/d", "sub"), ("dir", "pkg/sub"), ("hard", "pkg/d/x", "pkg/f"), ("file", "pkg/f")],
         "written through the link"),
        ([("file", "pkg/a.py"), ("sym", "pkg/empty", "")], "empty target"),
        ([("file", "pkg/a.py"), ("hard", "pkg/h", "")], "empty target"),
    ],
    ids=["symlink-over-folder", "write-through-dangling-link", "hardlink-through-link", "empty-symlink", "empty-hardlink"],
)  # fmt: skip
def test_tar_link_cases_that_used_to_be_internal_errors(
    sandbox: tuple[Path, Path], tmp_path: Path, members: list[tuple[str, ...]], match: str
) -> None:
    dest, outside = sandbox

    def build(tf: tarfile.TarFile) -> None:
        for kind, name, *rest in members:
            if kind == "file":
                add_file(tf, name)
            elif kind == "dir":
                info = tarfile.TarInfo(name)
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            else:
                add_link(tf, name, rest[0], tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE)

    archive = make_tar(tmp_path / "case.tar.gz", build)
    assert_refused(archive, dest, outside, match)
