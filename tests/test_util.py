"""pipeline.util: the helpers every layer shares, on real files."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from pipeline.util import atomic_path, error_line, sha256_file, shareable_mode, version_key


def test_sha256_file_matches_hashlib_across_chunks(tmp_path: Path) -> None:
    data = os.urandom((1 << 20) + 12345)  # more than one chunk
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_atomic_path_replaces_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "record.json"
    with atomic_path(target, mode=shareable_mode()) as temporary:
        temporary.write_text("new")
        assert not target.exists()  # nothing is visible before the rename
    assert target.read_text() == "new"
    assert target.stat().st_mode & 0o777 == shareable_mode()
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["record.json"]  # no temporary left behind


def test_version_key_orders_numbers_as_numbers() -> None:
    assert sorted(["3.10", "3.9", "3.13t", "3.8"], key=version_key) == ["3.8", "3.9", "3.10", "3.13t"]
    assert sorted(["2.17", "2.5", "2.3.4"], key=version_key) == ["2.3.4", "2.5", "2.17"]


def test_error_line_prefers_the_tests_in_order_then_the_last_line() -> None:
    log = "configure\nfoo.c:1: error: bad\nmeson.build:3: ERROR: missing\nexit 1\n"
    assert error_line(log, lambda line: "ERROR:" in line) == "meson.build:3: ERROR: missing"
    assert (
        error_line(log, lambda line: " error: " in line, lambda line: "ERROR:" in line)
        == "foo.c:1: error: bad"
    )
    assert error_line(log, lambda line: "nothing" in line) == "exit 1"
    assert error_line("a error\nb error", lambda line: "error" in line, first=True) == "a error"
    assert error_line("a error\nb error", lambda line: "error" in line) == "b error"
    assert error_line("  \n", default="exit status 3") == "exit status 3"
