"""Programs kept as files rather than strings: the @placeholder@ filler (pipeline.util.fill_placeholders), the
Debian root's qemu wrapper, the zig backend's host *-config shadow, and the PEP 517 steps the build sandbox runs
(pipeline/build_hooks.py). Each runs on real inputs; the sh files also pass shellcheck."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import need_toolset
from pipeline import build_hooks
from pipeline.builders.backends.zig import host_tools
from pipeline.builders.backends.zig.builder import BUILD_HOOKS
from pipeline.runtimes import debian_root
from pipeline.util import PlaceholderMismatch, fill_placeholders

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sh programs run on Linux")

SH_FILES = [debian_root.WRAPPER, host_tools.SHADOW]


def _executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(0o755)
    return path


def test_sh_files_pass_shellcheck() -> None:
    need_toolset("shellcheck")
    for script in SH_FILES:
        done = subprocess.run(["shellcheck", "--shell=sh", str(script)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout


def test_placeholders_and_values_must_match(tmp_path: Path) -> None:
    program = tmp_path / "p.sh"
    program.write_text('#!/bin/sh\nexec @tool@ "$@" # @tool@ for @target@, mail root@localhost\n')
    assert fill_placeholders(program, tool="/bin/echo", target="x") == (
        '#!/bin/sh\nexec /bin/echo "$@" # /bin/echo for x, mail root@localhost\n'
    )
    with pytest.raises(
        PlaceholderMismatch, match=r"p.sh: placeholders \['target', 'tool'\], given \['tool'\]"
    ):
        fill_placeholders(program, tool="/bin/echo")
    with pytest.raises(PlaceholderMismatch, match="given"):
        fill_placeholders(program, tool="t", target="x", targte="y")


def test_debian_wrapper_runs_the_roots_interpreter_under_qemu(tmp_path: Path) -> None:
    runtime = tmp_path / "debian-arm64-python3.11"
    wrapper = _executable(
        runtime / "bin" / "python3.11", debian_root.wrapper_text("3.11", "/bin/echo", "arm64")
    )
    assert (
        wrapper.read_text().splitlines()[1] == "# Debian arm64 python3.11 under qemu-user; built by rewheel."
    )
    # Through a symlink, as bin/python3 is: the wrapper finds its root by its real path.
    (tmp_path / "python3").symlink_to(wrapper)
    root = runtime.resolve() / "root"
    done = subprocess.run([str(tmp_path / "python3"), "-c", "print(1)"], capture_output=True, text=True)
    assert done.stdout == f"-L {root} {root}/usr/bin/python3.11 -c print(1)\n"


def test_a_hidden_config_script_fails_with_one_line_naming_it(tmp_path: Path) -> None:
    shadow = _executable(
        tmp_path / "xml2-config", host_tools.shadow_text("xml2-config", "musllinux_1_2_aarch64")
    )
    done = subprocess.run([str(shadow), "--libs"], capture_output=True, text=True)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "rewheel: error: the host's xml2-config is hidden in a cross build for musllinux_1_2_aarch64: it "
        "describes host libraries; give the library as a recipe [[native]] entry (its own xml2-config is then "
        "on PATH)"
    ]


# An in-tree PEP 517 backend (backend-path): a real backend that needs nothing installed.
_BACKEND = """
import os

def get_requires_for_build_wheel(config_settings=None):
    return ["rewheel-no-such-dist>=1", "json-is-no-dist"]

def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    info = os.path.join(metadata_directory, "tiny-1.0.dist-info")
    os.mkdir(info)
    with open(os.path.join(info, "METADATA"), "w") as handle:
        handle.write("Metadata-Version: 2.1\\nName: tiny\\nVersion: 1.0\\nRequires-Dist: six\\n")
    return "tiny-1.0.dist-info"

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    raise RuntimeError("not needed here")
"""


def _tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tiny-1.0"
    tree.mkdir()
    (tree / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
    )
    (tree / "backend.py").write_text(_BACKEND)
    return tree


def _hooks(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # By path, as the sandbox runs it; this Python has `build`, as a build venv has.
    return subprocess.run(
        [sys.executable, str(BUILD_HOOKS), *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_build_hooks_is_the_module_the_builder_copies() -> None:
    assert BUILD_HOOKS == Path(build_hooks.__file__)


def test_build_hooks_writes_metadata_and_names_missing_requirements(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    done = _hooks("metadata", str(tree), str(out), cwd=tree)
    assert done.returncode == 0, done.stderr
    assert "Requires-Dist: six" in (out / "tiny-1.0.dist-info" / "METADATA").read_text()
    done = _hooks("missing-requirements", str(tree), cwd=tree)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == ["json-is-no-dist", "rewheel-no-such-dist>=1"]


def test_build_hooks_refuses_unknown_steps_with_a_usage_line(tmp_path: Path) -> None:
    for args in ([], ["metadata", "tree"], ["wheel", "tree", "out"]):
        done = _hooks(*args, cwd=tmp_path)
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.splitlines() == [
            "usage: build_hooks.py metadata TREE OUT | missing-requirements TREE"
        ]
