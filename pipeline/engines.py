"""Container engine detection: a docker or podman that really works here, or a sentence saying why none does.

A `docker` executable is not an engine: on many machines (this project's CI included) the CLI is installed
but no daemon answers, so detection runs `docker info` / `podman info` and only trusts a zero exit.

podman needs two settings on hosts like Debian 12 VMs, found by trying (see the field notes): the OCI runtime
must be runc (crun fails at setrlimit NOFILE and on hybrid cgroups) and containers need explicit nofile/nproc
limits. rewheel writes those into its own containers.conf and selects it with CONTAINERS_CONF for every podman
command it runs, unless the user already points CONTAINERS_CONF somewhere (then theirs is used untouched).

REWHEEL_CONTAINER_ENGINE=docker|podman|none forces the choice ("none" = behave as if no engine worked).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import RewheelError
from pipeline.util import atomic_path, error_line

ENGINE_NAMES = ("docker", "podman")
FORCE_VARIABLE = "REWHEEL_CONTAINER_ENGINE"
PROBE_TIMEOUT = 60  # seconds; podman's first `info` initialises its store and can take a while

CONTAINERS_CONF_TEXT = """\
# Written by rewheel (pipeline/engines.py); selected with CONTAINERS_CONF for podman commands.
# Explicit limits: without them the OCI runtime fails to set RLIMIT_NOFILE on some hosts.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
{runtime_section}"""


@dataclass(frozen=True)
class Engine:
    """A container engine that answered `info` here."""

    name: str  # "docker" | "podman" (cibuildwheel's names)
    executable: str
    version: str
    env: Mapping[str, str] = field(default_factory=dict)  # what its commands need in the environment
    create_args: tuple[str, ...] = ()  # extra `create` arguments cibuildwheel should pass

    def cibw_container_engine(self) -> str:
        """cibuildwheel's container-engine option for this engine (its own `name; create_args: ...` syntax)."""
        if not self.create_args:
            return self.name
        import shlex

        return f"{self.name}; create_args: {' '.join(shlex.quote(a) for a in self.create_args)}"

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """An environment for running this engine (or cibuildwheel driving it)."""
        return {**(os.environ if base is None else base), **self.env}

    def run(self, *args: str, check: bool = True, **kwargs: object) -> subprocess.CompletedProcess[str]:
        """Run an engine command with its environment; output captured as text."""
        result = subprocess.run(
            [self.executable, *args],
            env=self.environ(),
            capture_output=True,
            text=True,
            **kwargs,  # type: ignore[call-overload]
        )
        if check and result.returncode != 0:
            last = (result.stderr.strip().splitlines() or [f"exit code {result.returncode}"])[-1]
            raise RewheelError(f"`{self.name} {' '.join(args[:3])}` failed: {last}")
        return result

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "executable": self.executable,
            "version": self.version,
            "env": dict(self.env),
            "create_args": list(self.create_args),
            "cibw_container_engine": self.cibw_container_engine(),
        }


def podman_containers_conf() -> Path:
    """rewheel's containers.conf for podman (written once under the cache; rewritten if it changed)."""
    from pipeline.paths import cache_root

    runtime_section = '[engine]\nruntime = "runc"\n' if shutil.which("runc") else ""
    text = CONTAINERS_CONF_TEXT.format(runtime_section=runtime_section)
    path = cache_root() / "podman" / "containers.conf"
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return path


def _podman_env() -> dict[str, str]:
    if os.environ.get("CONTAINERS_CONF"):
        return {}  # the user's own configuration wins
    return {"CONTAINERS_CONF": str(podman_containers_conf())}


def _first_line(text: str) -> str:
    return error_line(text, default="")


PROBE_MEMORY_SECONDS = 3600


def _probe_memory(executable: str, env: Mapping[str, str]) -> tuple[Path, str]:
    """Where a successful podman probe is remembered, and the identity it is valid for: the same executable
    (path, size, mtime), the same configuration and runc. `podman info` takes seconds on a loaded machine; a
    no-op `rewheel build` asks for the engine of every job and must stay well under a second."""
    from pipeline.paths import cache_root

    stat = os.stat(executable)
    conf = env.get("CONTAINERS_CONF") or os.environ.get("CONTAINERS_CONF", "")
    conf_text = Path(conf).read_text(encoding="utf-8") if conf and Path(conf).is_file() else ""
    identity = f"{executable}|{stat.st_size}|{stat.st_mtime_ns}|{shutil.which('runc')}|{conf}|{conf_text}"
    return cache_root() / "podman" / "probe.json", identity


def _remembered(executable: str, env: Mapping[str, str]) -> str | None:
    import json
    import time

    try:
        path, identity = _probe_memory(executable, env)
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    fresh = 0 <= time.time() - float(data.get("at", 0)) < PROBE_MEMORY_SECONDS
    return (
        str(data["version"]) if fresh and data.get("identity") == identity and data.get("version") else None
    )


def _remember(executable: str, env: Mapping[str, str], version: str) -> None:
    import json
    import time

    try:
        path, identity = _probe_memory(executable, env)
        with atomic_path(path) as partial:
            partial.write_text(
                json.dumps({"identity": identity, "version": version, "at": time.time()}), encoding="utf-8"
            )
    except OSError:
        pass  # only a speed-up


def probe(name: str) -> Engine | str:
    """Try one engine: an Engine when `<name> info` succeeds, else one line saying what failed.

    A podman that answered within the last hour, unchanged since (executable, configuration, runc), is trusted
    without asking again."""
    executable = shutil.which(name)
    if not executable:
        hint = (
            "apt-get install podman runc debootstrap; `rewheel build --backend cibuildwheel` installs them "
            "itself when run as root"
            if name == "podman"
            else "install Docker Engine and start dockerd"
        )
        return f"{name} is not installed ({hint})"
    env = _podman_env() if name == "podman" else {}
    if name == "podman":
        remembered = _remembered(executable, env)
        if remembered:
            return Engine(name=name, executable=executable, version=remembered, env=env)
    fmt = "{{.ServerVersion}}" if name == "docker" else "{{.Version.Version}}"
    try:
        result = subprocess.run(
            [executable, "info", "--format", fmt],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return f"`{name} info` did not answer within {PROBE_TIMEOUT} s"
    except OSError as exc:
        return f"`{name} info` could not run: {exc.strerror or exc}"
    if result.returncode != 0:
        reason = _first_line(result.stderr) or _first_line(result.stdout) or f"exit code {result.returncode}"
        return f"`{name} info` failed: {reason}"
    version = result.stdout.strip() or "unknown"
    if name == "podman" and not os.environ.get("CONTAINERS_CONF") and not shutil.which("runc"):
        # podman answers `info` with crun too, but crun cannot start containers on these hosts.
        return "podman works but runc is missing (crun fails here): apt-get install runc"
    if name == "podman":
        _remember(executable, env, version)
    return Engine(name=name, executable=executable, version=version, env=env)


_detected: dict[str, Engine | str] = {}


def _probe_cached(name: str, refresh: bool) -> Engine | str:
    if refresh or name not in _detected or _missing_part_appeared(_detected[name], name):
        _detected[name] = probe(name)
    return _detected[name]


def _missing_part_appeared(found: Engine | str, name: str) -> bool:
    """A failed probe is asked again once what it missed is there: rewheel (or a test's need_toolset) may
    install podman or runc after an earlier probe in the same process found them missing."""
    if not isinstance(found, str):
        return False
    return (" is not installed" in found and shutil.which(name) is not None) or (
        "runc is missing" in found and shutil.which("runc") is not None
    )


def _candidates() -> list[str]:
    forced = os.environ.get(FORCE_VARIABLE, "").strip().lower()
    if not forced:
        return list(ENGINE_NAMES)
    if forced == "none":
        return []
    if forced not in ENGINE_NAMES:
        raise RewheelError(f"{FORCE_VARIABLE}={forced!r}: expected one of docker, podman, none")
    return [forced]


def detect_engine(*, refresh: bool = False) -> Engine | None:
    """The first working engine (docker, then podman), or None. Probes are cached for the process."""
    for name in _candidates():
        found = _probe_cached(name, refresh)
        if isinstance(found, Engine):
            return found
    return None


def engine_problem(*, refresh: bool = False) -> str:
    """Why no container engine works here, and what can build instead (one line)."""
    candidates = _candidates()
    if not candidates:
        reasons = [f"{FORCE_VARIABLE}=none"]
    else:
        reasons = []
        for name in candidates:
            found = _probe_cached(name, refresh)
            if isinstance(found, Engine):
                return f"{name} {found.version} works; nothing is missing"
            reasons.append(found)
    return (
        f"no working container engine ({'; '.join(reasons)}): cibuildwheel needs one for Linux builds; "
        "the zig backend (--backend zig) builds Linux targets without a container"
    )
