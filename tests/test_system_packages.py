"""The Debian package installer (pipeline/system_packages.py): recovering from a dpkg killed half-way."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from pipeline import system_packages
from pipeline.errors import MissingTool

_REFUSAL = "E: dpkg was interrupted, you must manually run 'dpkg --configure -a' to correct the problem.\n"


def _scripted_apt(monkeypatch: pytest.MonkeyPatch, install_results: list[int]) -> list[list[str]]:
    """apt-get replaced by a script: installs refuse as after a killed dpkg until `dpkg --configure -a` ran."""
    calls: list[list[str]] = []
    state = {"configured": False}

    def apt(args: list[str]) -> subprocess.CompletedProcess[str]:
        calls.append(["apt-get", *args])
        if args[0] == "install" and not state["configured"]:
            return subprocess.CompletedProcess(args, 100, "", _REFUSAL)
        code = install_results.pop(0) if args[0] == "install" else 0
        return subprocess.CompletedProcess(
            args, code, "", "" if code == 0 else "E: Unable to locate package x\n"
        )

    def configure() -> bool:
        calls.append(["dpkg", "--configure", "-a"])
        state["configured"] = True
        return True

    monkeypatch.setattr(system_packages, "_apt", apt)
    monkeypatch.setattr(system_packages, "finish_interrupted_dpkg", configure)
    monkeypatch.setattr(system_packages, "missing_packages", lambda packages: list(packages))
    monkeypatch.setattr(system_packages, "can_install", lambda: True)
    monkeypatch.setattr(system_packages, "_lists_are_fresh", lambda: True)
    return calls


def test_an_install_refused_after_a_killed_dpkg_finishes_dpkg_and_installs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Seen in CI: a run stopped mid-install left dpkg interrupted, and every later toolset install failed.
    calls = _scripted_apt(monkeypatch, install_results=[0])
    system_packages.ensure_debian_packages(["shellcheck"], purpose="checking scripts")
    assert calls == [
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "shellcheck"],
        ["dpkg", "--configure", "-a"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "shellcheck"],
    ]


def test_an_install_that_still_fails_after_dpkg_is_finished_names_apts_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _scripted_apt(monkeypatch, install_results=[100, 100])
    with pytest.raises(
        MissingTool, match=r"checking scripts needs Debian packages shellcheck; .* Unable to locate"
    ):
        system_packages.ensure_debian_packages(["shellcheck"], purpose="checking scripts")


@pytest.mark.skipif(
    not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("dpkg")),
    reason="needs root and Debian's dpkg (it runs the real `dpkg --configure -a`)",
)
def test_finishing_dpkg_on_a_healthy_system_is_the_real_command_and_succeeds() -> None:
    # On a system with nothing pending, `dpkg --configure -a` does nothing and exits 0: this holds the command
    # line (options dpkg accepts) without needing a broken system.
    assert system_packages.finish_interrupted_dpkg() is True
