"""Tests of the index tests' own helpers (tests/helpers/): the synthetic wheels they publish."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest


def test_synthetic_wheels_are_valid_and_reproducible(tmp_path: Path) -> None:
    from helpers.synthetic import make_wheel
    from pipeline.index.wheelinfo import read_wheel

    first = make_wheel(tmp_path / "a", "Demo.Pkg", "1.2.3", requires_python=">=3.8")
    second = make_wheel(tmp_path / "b", "Demo.Pkg", "1.2.3", requires_python=">=3.8")
    assert first.name == "demo_pkg-1.2.3-py3-none-any.whl"
    assert first.read_bytes() == second.read_bytes()
    entry, metadata = read_wheel(first)
    assert (entry.project, entry.version, entry.requires_python) == ("demo-pkg", "1.2.3", ">=3.8")
    assert b"Name: Demo.Pkg" in metadata
    with zipfile.ZipFile(first) as archive:
        record = archive.read("demo_pkg-1.2.3.dist-info/RECORD").decode()
    assert "demo_pkg/__init__.py,sha256=" in record


def test_read_wheel_refuses_a_wheel_whose_metadata_names_another_project(tmp_path: Path) -> None:
    from helpers.synthetic import make_wheel
    from pipeline.index.wheelinfo import PublishError, read_wheel

    wheel = make_wheel(tmp_path, "alpha", "1.0")
    renamed = wheel.rename(tmp_path / "beta-1.0-py3-none-any.whl")
    with pytest.raises(PublishError, match="does not match the file name"):
        read_wheel(renamed)
