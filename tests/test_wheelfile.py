"""Re-packed wheels: reproducible bytes, an exact RECORD (checked by an independent reader), installable by
pip, and named so pip prefers the build-tagged file."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.utils import parse_wheel_filename

from pipeline.unpack import unpack
from pipeline.util import sha256_file
from pipeline.wheelfile import WheelError, read_wheel_metadata, record_problems, repack_wheel

PIP_23_2_1 = (
    "pip",
    "23.2.1",
    "pip-23.2.1-py3-none-any.whl",
    "7ccf472345f20d35bdc9d1841ff5f313260c2c33fe417f48c30ac46cccabf5be",
)


@pytest.fixture
def pip_tree(tmp_path: Path, pypi_file) -> Path:
    return unpack(pypi_file(*PIP_23_2_1), tmp_path / "tree")


def _independent_record_check(wheel: Path) -> int:
    """Every member hashed here with hashlib/base64 against RECORD, without rewheel's own reader."""
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        (record_name,) = [n for n in names if n.endswith(".dist-info/RECORD")]
        rows = list(csv.reader(io.StringIO(archive.read(record_name).decode())))
        listed = {row[0]: row for row in rows}
        assert set(listed) == set(names), set(listed) ^ set(names)
        assert listed[record_name][1:] == ["", ""]
        for name in names:
            if name == record_name:
                continue
            data = archive.read(name)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")
            assert listed[name][1] == f"sha256={digest}", name
            assert listed[name][2] == str(len(data)), name
    return len(names)


def test_repack_is_reproducible(tmp_path: Path, pip_tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    first = repack_wheel(pip_tree, tmp_path / "one")
    # Different file times and a different walk start must not change a byte.
    for path in pip_tree.rglob("*.py"):
        os.utime(path, (1_700_000_000, 1_700_000_000))
    second = repack_wheel(pip_tree, tmp_path / "two")
    assert first.name == second.name == "pip-23.2.1-py3-none-any.whl"
    assert sha256_file(first) == sha256_file(second)
    with zipfile.ZipFile(first) as archive:
        infos = archive.infolist()
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {(i.external_attr >> 16) & 0o777 for i in infos} <= {0o644, 0o755}
    names = [i.filename for i in infos]
    first_dist_info = next(i for i, n in enumerate(names) if ".dist-info/" in n)
    assert all(".dist-info/" in n for n in names[first_dist_info:]), "the .dist-info folder comes last"
    assert names[-1] == "pip-23.2.1.dist-info/RECORD"
    assert names[:first_dist_info] == sorted(names[:first_dist_info])

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    dated = repack_wheel(pip_tree, tmp_path / "dated")
    with zipfile.ZipFile(dated) as archive:
        assert {i.date_time for i in archive.infolist()} == {(2023, 11, 14, 22, 13, 20)}


def test_record_is_exact_for_a_patched_tree(tmp_path: Path, pip_tree: Path) -> None:
    glibc = pip_tree / "pip/_internal/utils/glibc.py"
    glibc.write_text(glibc.read_text() + "\n# changed\n")
    (pip_tree / "pip/_internal/utils/added.py").write_text("X = 1\n")
    (pip_tree / "pip-23.2.1.dist-info/RECORD.jws").write_text("stale signature")
    wheel = repack_wheel(pip_tree, tmp_path / "out")
    count = _independent_record_check(wheel)
    assert count > 500  # pip has ~800 files: a real wheel, not a toy
    assert record_problems(wheel) == []
    with zipfile.ZipFile(wheel) as archive:
        assert "pip-23.2.1.dist-info/RECORD.jws" not in archive.namelist()
        assert archive.read("pip/_internal/utils/glibc.py").endswith(b"# changed\n")
    # rewheel's reader finds a wrong RECORD, too (the stale re-zip python-build-standalone once shipped).
    stale = tmp_path / "stale.whl"
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(stale, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "pip/_internal/utils/glibc.py":
                data += b"# edited after RECORD\n"
            target.writestr(info, data)
    assert any("glibc.py: RECORD hash" in p for p in record_problems(stale))


def test_build_tag_names_and_metadata(tmp_path: Path, pip_tree: Path) -> None:
    wheel = repack_wheel(pip_tree, tmp_path / "out", build_tag="1rewheel")
    assert wheel.name == "pip-23.2.1-1rewheel-py3-none-any.whl"
    name, version, build, _tags = parse_wheel_filename(wheel.name)
    assert (name, str(version), build) == ("pip", "23.2.1", (1, "rewheel"))
    metadata = read_wheel_metadata(wheel)
    assert metadata.build == "1rewheel" and metadata.tags == ("py3-none-any",)
    _independent_record_check(wheel)
    # The tree is untouched: the ensurepip name can be packed from the same tree afterwards.
    assert "Build" not in (pip_tree / "pip-23.2.1.dist-info/WHEEL").read_text()
    for bad in ("rewheel1", "1-rewheel", "1 rewheel"):
        with pytest.raises(WheelError, match="must start with a digit"):
            repack_wheel(pip_tree, tmp_path / "bad", build_tag=bad)


def test_executable_bit_is_kept(tmp_path: Path, pip_tree: Path) -> None:
    script = pip_tree / "pip-23.2.1.data" / "scripts" / "tool"
    script.parent.mkdir(parents=True)
    script.write_text("#!python\nprint('hi')\n")
    script.chmod(0o775)
    wheel = repack_wheel(pip_tree, tmp_path / "out")
    with zipfile.ZipFile(wheel) as archive:
        mode = archive.getinfo("pip-23.2.1.data/scripts/tool").external_attr >> 16
    assert mode & 0o777 == 0o755


def test_symlinks_and_two_dist_infos_are_refused(tmp_path: Path, pip_tree: Path) -> None:
    (pip_tree / "link").symlink_to("pip/__init__.py")
    with pytest.raises(WheelError, match="symbolic link"):
        repack_wheel(pip_tree, tmp_path / "out")
    (pip_tree / "link").unlink()
    (pip_tree / "other-1.0.dist-info").mkdir()
    with pytest.raises(WheelError, match="exactly one top-level .dist-info"):
        repack_wheel(pip_tree, tmp_path / "out")


def test_pip_installs_the_repacked_wheel_and_prefers_the_build_tag(
    tmp_path: Path, pip_tree: Path, pypi_file
) -> None:
    """pip itself accepts the re-packed wheel (installs it, runs it), and picks the build-tagged file over
    the upstream one of the same version from one --find-links folder."""
    plain = repack_wheel(pip_tree, tmp_path / "links")
    tagged = repack_wheel(pip_tree, tmp_path / "tagged", build_tag="1rewheel")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # Bootstrap exactly as ensurepip does: run pip from inside the wheel to install that wheel.
    subprocess.run(
        [str(python), f"{plain}/pip", "install", "--no-index", "--no-cache-dir", "--quiet", str(plain)],
        check=True,
    )
    shown = subprocess.run(
        [str(python), "-m", "pip", "--version"], capture_output=True, text=True, check=True
    )
    assert shown.stdout.startswith(f"pip 23.2.1 from {venv}")
    check = subprocess.run([str(python), "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout

    links = tmp_path / "links"
    upstream = pypi_file(*PIP_23_2_1)
    (links / upstream.name).unlink()  # the folder holds the upstream file and the build-tagged one
    (links / upstream.name).write_bytes(upstream.read_bytes())
    (links / tagged.name).write_bytes(tagged.read_bytes())
    chosen = tmp_path / "chosen"
    subprocess.run(
        [str(python), "-m", "pip", "download", "--no-index", "--no-deps", "--quiet", "--find-links", str(links),
         "--dest", str(chosen), "pip==23.2.1"],
        check=True,
    )  # fmt: skip
    assert [p.name for p in chosen.iterdir()] == ["pip-23.2.1-1rewheel-py3-none-any.whl"]
