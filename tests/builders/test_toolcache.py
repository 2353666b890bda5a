"""Tool facts are remembered while the files they came from are unchanged, and read again when they change."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.builders import toolcache


def test_a_fact_is_reused_until_its_file_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REWHEEL_CACHE_DIR", str(tmp_path / "cache"))
    toolcache.forget()
    tool = tmp_path / "tool"
    tool.write_text("v1")
    calls: list[str] = []

    def version() -> str:
        calls.append(tool.read_text())
        return tool.read_text()

    assert toolcache.remembered("tool-version", [tool], version) == "v1"
    assert toolcache.remembered("tool-version", [tool], version) == "v1"
    toolcache.forget()  # a new process reads the store from disk
    assert toolcache.remembered("tool-version", [tool], version) == "v1"
    assert calls == ["v1"]
    tool.write_text("v2")
    os.utime(tool, ns=(1, 1))  # whatever the clock's resolution, the stamp differs
    assert toolcache.remembered("tool-version", [tool], version) == "v2"
    tool.unlink()
    assert toolcache.remembered("tool-version", [tool], lambda: "gone") == "gone"
    toolcache.forget()
