"""Container engine detection against the real docker and podman of this machine."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import need_toolset
from pipeline import engines
from pipeline.errors import RewheelError


@pytest.fixture(autouse=True)
def fresh_probes(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(engines, "_detected", {})
    monkeypatch.delenv(engines.FORCE_VARIABLE, raising=False)
    monkeypatch.delenv("CONTAINERS_CONF", raising=False)


def test_forcing_none_means_no_engine_and_says_what_to_use_instead(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(engines.FORCE_VARIABLE, "none")
    assert engines.detect_engine() is None
    problem = engines.engine_problem()
    assert "REWHEEL_CONTAINER_ENGINE=none" in problem and "--backend zig" in problem


def test_forcing_an_unknown_engine_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(engines.FORCE_VARIABLE, "containerd")
    with pytest.raises(RewheelError, match="expected one of docker, podman, none"):
        engines.detect_engine()


def test_docker_is_trusted_only_when_its_daemon_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Here the docker CLI exists without a daemon; wherever a daemon answers, docker must be detected."""
    monkeypatch.setenv(engines.FORCE_VARIABLE, "docker")
    found = engines.detect_engine()
    docker = shutil.which("docker")
    daemon_answers = (
        bool(docker) and subprocess.run([docker or "docker", "info"], capture_output=True).returncode == 0
    )
    if daemon_answers:
        assert found is not None and found.name == "docker" and found.cibw_container_engine() == "docker"
    else:
        assert found is None
        problem = engines.engine_problem()
        assert problem.startswith("no working container engine (")
        assert ("docker is not installed" in problem) if not docker else ("`docker info` failed" in problem)


def test_podman_with_rewheels_containers_conf(monkeypatch: pytest.MonkeyPatch) -> None:
    need_toolset("podman")
    monkeypatch.setenv(engines.FORCE_VARIABLE, "podman")
    found = engines.detect_engine()
    assert found is not None, engines.engine_problem()
    assert found.name == "podman" and found.version[0].isdigit()
    conf = found.env["CONTAINERS_CONF"]
    text = Path(conf).read_text(encoding="utf-8")
    assert 'runtime = "runc"' in text and "nofile=20000:20000" in text
    # podman itself reads that file: the runtime it reports is runc, not crun.
    runtime = found.run("info", "--format", "{{.Host.OCIRuntime.Name}}").stdout.strip()
    assert runtime == "runc"
    assert found.to_json()["cibw_container_engine"] == "podman"


def test_users_containers_conf_is_left_alone(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    need_toolset("podman")
    own = tmp_path / "mine.conf"
    own.write_text('[engine]\nruntime = "runc"\n', encoding="utf-8")
    monkeypatch.setenv("CONTAINERS_CONF", str(own))
    monkeypatch.setenv(engines.FORCE_VARIABLE, "podman")
    found = engines.detect_engine()
    assert found is not None and found.env == {}
    assert found.environ()["CONTAINERS_CONF"] == str(own) == os.environ["CONTAINERS_CONF"]


def test_create_args_use_cibuildwheels_syntax() -> None:
    from cibuildwheel.oci_container import OCIContainerEngineConfig

    engine = engines.Engine(
        name="podman", executable="podman", version="4", create_args=("--ulimit", "nproc=1:2")
    )
    parsed = OCIContainerEngineConfig.from_config_string(engine.cibw_container_engine())
    assert parsed.name == "podman" and parsed.create_args == ("--ulimit", "nproc=1:2")


def test_a_probe_from_before_podman_was_installed_does_not_stick(monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's failure: a probe made before the podman toolset was installed ("podman is not installed")
    must not be the answer for the rest of the process once rewheel or a test has installed it."""
    monkeypatch.setenv(engines.FORCE_VARIABLE, "podman")
    engines._detected["podman"] = "podman is not installed (apt-get install podman runc debootstrap)"
    need_toolset("podman")
    found = engines.detect_engine()
    assert found is not None and found.name == "podman", engines.engine_problem()
