"""The cibuildwheel backend: translate a recipe job into cibuildwheel's own options and run the real tool.

rewheel does not reimplement what cibuildwheel does (containers, build isolation, repair, tests). It writes
cibuildwheel's options as CIBW_* environment variables, in the exact syntax cibuildwheel parses (its
environment option is bash-like, its config-settings a shlex table, its command lists joined with " && "),
and runs `cibuildwheel --only <identifier>` on the prepared source tree. tests/builders/backends/test_cibuildwheel.py
reads every option back through cibuildwheel's own option parser to prove the translation.

Which image: a local podman image that rewheel makes (pipeline/runtimes/podman_images.py) when the engine is
podman and one exists for the target; otherwise the target's image name from the catalogue (cibuildwheel
resolves it to its pinned image). Optional features a target lacks ([features] + disable-features) become the
package's own switches: their config-settings and environment are added, and what is lost goes into notes.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.builders.backends import BuildRequest, BuildResult
from pipeline.builders.backends.cibuildwheel_ids import build_identifier, cibw_arch, cibw_image, cibw_platform
from pipeline.errors import RecipeError, RewheelError
from pipeline.log import log as reporter  # `log` here is cibuildwheel's output
from pipeline.util import error_line

if TYPE_CHECKING:
    from pipeline.engines import Engine
    from pipeline.plan import Job
    from pipeline.recipe import BuildOptions
    from pipeline.runtimes.podman_images import PodmanImage
    from pipeline.targets import Target

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

# Options the recipe models itself (or the job fixes): setting them again under [build] cibuildwheel would
# give two sources of truth, so it is refused with a pointer to the recipe's own key.
RECIPE_OWNED_OPTIONS = {
    "build": "the job's target and python",
    "skip": "the recipe's exclude",
    "archs": "the job's target",
    "platform": "the job's target",
    "environment": "[build] environment",
    "config-settings": "[build] config-settings",
    "before-all": "[build] before-all",
    "before-build": "[build] before-build",
    "container-engine": "the detected container engine (REWHEEL_CONTAINER_ENGINE to force one)",
}
# cibuildwheel joins these list options with " && " (they are shell commands); other lists with spaces.
COMMAND_LIST_OPTIONS = {
    "before-all", "before-build", "before-test", "test-command", "repair-wheel-command", "audit-command",
}  # fmt: skip
# Table options in cibuildwheel's environment syntax (NAME="value" pairs evaluated like bash).
ENVIRONMENT_TABLE_OPTIONS = {"environment", "test-environment"}
# Table options in cibuildwheel's "key: value; key: value" syntax.
SEMICOLON_TABLE_OPTIONS = {"build-frontend", "container-engine", "dependency-versions", "test-runtime"}


# -- quoting, in cibuildwheel's own syntaxes ----------------------------------------------------------------
def quote_environment_value(value: str) -> str:
    """Quote a literal value for cibuildwheel's environment option.

    cibuildwheel evaluates the option like bash (bashlex), so `$`, quotes and spaces must be protected for the
    value to arrive unchanged. Its evaluator does not join adjacent quoted words ('a'"'"'b'), so a value with a
    single quote is written double-quoted with \\, ", $ and ` escaped instead of shlex's form.
    """
    if "'" not in value:
        return f"'{value}'"
    escaped = re.sub(r'([\\"$`])', r"\\\1", value)
    return f'"{escaped}"'


def format_environment(environment: Mapping[str, str]) -> str:
    for name in environment:
        if not ENV_NAME_RE.match(name):
            raise RecipeError(f"environment variable name {name!r} is not a valid shell variable name")
    return " ".join(f"{name}={quote_environment_value(value)}" for name, value in environment.items())


# Flag variables a recipe adds to. setuptools >= 72 lets a CFLAGS variable replace the build Python's sysconfig
# CFLAGS (-O3 -DNDEBUG -Wall ...), so the recipe's CFLAGS is written after them; each also keeps what the image
# sets ($NAME: cibuildwheel's evaluator has no ${NAME:-}). The sysconfig value is asked from the build's own
# Python when cibuildwheel evaluates the option (it does so with that Python first on PATH).
_SYSCONFIG_CFLAGS = (
    "$(python -c 'import sys, sysconfig; print(sysconfig.get_config_var(sys.argv[1]) or str())' CFLAGS)"
)
ADDED_FLAGS = {
    "CFLAGS": f"{_SYSCONFIG_CFLAGS} $CFLAGS",
    "CPPFLAGS": "$CPPFLAGS",
    "LDFLAGS": "$LDFLAGS",
}


def format_build_environment(environment: Mapping[str, str]) -> str:
    """A recipe's [build] environment as CIBW_ENVIRONMENT: literal values, except that CFLAGS, CPPFLAGS and
    LDFLAGS add to the flags the build already has instead of replacing them."""
    format_environment(environment)  # the name checks
    parts = []
    for name, value in environment.items():
        if name in ADDED_FLAGS:
            escaped = re.sub(r'([\\"$`])', r"\\\1", value)
            parts.append(f'{name}="{ADDED_FLAGS[name]} {escaped}"')
        else:
            parts.append(f"{name}={quote_environment_value(value)}")
    return " ".join(parts)


def format_config_settings(settings: Mapping[str, str | list[str]]) -> str:
    """cibuildwheel's config-settings table: `key=value` words, shlex-quoted; a list repeats the key."""
    words = []
    for key, value in settings.items():
        if not key or shlex.split(key) != [key] or "=" in key:
            raise RecipeError(f"config-settings key {key!r} cannot be passed to cibuildwheel")
        for item in [value] if isinstance(value, str) else value:
            words.append(f"{key}={shlex.quote(item)}")
    return " ".join(words)


def _format_option(name: str, value: Any) -> str:
    """One extra [tool.cibuildwheel]-style option value as cibuildwheel reads it from CIBW_*."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    if isinstance(value, list):
        items = [str(v) for v in value]
        if name in COMMAND_LIST_OPTIONS:
            return " && ".join(items)
        return " ".join(shlex.quote(v) for v in items)
    if isinstance(value, dict):
        if name in ENVIRONMENT_TABLE_OPTIONS:
            return format_environment({str(k): str(v) for k, v in value.items()})
        if name in SEMICOLON_TABLE_OPTIONS:
            parts = []
            for key, item in value.items():
                words = item if isinstance(item, list) else [item]
                parts.append(f"{key}: {' '.join(shlex.quote(str(w)) for w in words)}")
            return "; ".join(parts)
        return format_config_settings(
            {str(k): v if isinstance(v, list) else str(v) for k, v in value.items()}
        )
    raise RecipeError(f"[build] cibuildwheel option {name!r}: unsupported value {value!r}")


def _known_cibuildwheel_options() -> set[str]:
    """Option names cibuildwheel itself knows (from its defaults.toml), so typos are caught here."""
    import tomllib
    from cibuildwheel.util import resources  # type: ignore[import-not-found,unused-ignore]

    with resources.DEFAULTS.open("rb") as handle:
        table = tomllib.load(handle)["tool"]["cibuildwheel"]
    platform_sections = {"linux", "macos", "windows", "android", "ios", "pyodide"}
    return {key for key in table if key not in platform_sections}


def cibw_variable(option: str) -> str:
    return "CIBW_" + option.upper().replace("-", "_")


# -- the translation ----------------------------------------------------------------------------------------
def repair_command(job: Job, target: Target) -> str:
    """auditwheel (Linux) or delvewheel (Windows) with the recipe's [repair] options, as a cibuildwheel
    command template ({wheel} and {dest_dir} are filled in by cibuildwheel)."""
    repair = job.recipe.repair
    if target.is_linux:
        words = ["auditwheel", "repair", "--plat", repair.auditwheel.plat or target.platform_tag]
        for soname in repair.auditwheel.exclude:
            words += ["--exclude", soname]
        return " ".join(shlex.quote(w) for w in words) + " -w {dest_dir} {wheel}"
    if target.is_windows:
        # Windows: cibuildwheel runs this through cmd.exe; delvewheel takes ';'-separated lists.
        words = ["delvewheel", "repair"]
        options = job.recipe.repair.delvewheel
        if options.no_dll:
            words += ["--no-dll", ";".join(options.no_dll)]
        if options.add_path:
            words += ["--add-path", ";".join(options.add_path)]
        if options.exclude:
            words += ["--exclude", ";".join(options.exclude)]
        quoted = [f'"{w}"' if (" " in w or ";" in w) else w for w in words]
        return " ".join(quoted) + " -w {dest_dir} {wheel}"
    raise RewheelError(f"target {target.name}: cibuildwheel has no repair step for os {target.os!r}")


def test_command(job: Job) -> str | None:
    """The recipe's [test]: one python -c importing every module, then its command."""
    test = job.recipe.test
    commands = []
    for module in test.imports:
        if not MODULE_RE.match(module):
            raise RecipeError(f"{job.recipe.path}: [test] imports: {module!r} is not a module name")
    if test.imports:
        imports = "; ".join(f"import {m}" for m in test.imports)
        commands.append(f'python -c "{imports}"')
    if test.command:
        commands.append(test.command)
    return " && ".join(commands) or None


def feature_switches(
    job: Job, options: BuildOptions
) -> tuple[dict[str, str], dict[str, str | list[str]], list[str]]:
    """(environment, config-settings, notes) of the optional features this target disables."""
    environment: dict[str, str] = {}
    settings: dict[str, str | list[str]] = {}
    notes = []
    for name in options.disable_features:
        feature = job.recipe.features[name]
        environment.update(feature.environment)
        settings.update(feature.config_settings)
        lost = f": {feature.lost}" if feature.lost else ""
        notes.append(f"feature {name!r} disabled for {job.target}{lost}")
    return environment, settings, notes


def image_variable(target: Target) -> str:
    family = "MUSLLINUX" if target.is_musl else "MANYLINUX"
    return f"CIBW_{family}_{cibw_arch(target).upper()}_IMAGE"


def local_image_for(target: Target, engine: Engine | None, pythons: tuple[str, ...] = ()) -> str | None:
    """The local podman image standing in for the target's image (carrying `pythons`), when podman is the
    engine and rewheel makes one for the target."""
    if engine is None or engine.name != "podman":
        return None
    from pipeline.runtimes.podman_images import image_for_target

    image = image_for_target(target.name, pythons)
    return image.image_reference() if image else None


_UNSET: Any = object()


def cibuildwheel_config(
    job: Job, *, engine: Engine | None = _UNSET, image: str | None = _UNSET
) -> dict[str, str]:
    """Every CIBW_* variable rewheel passes to cibuildwheel for `job`, as cibuildwheel reads them.

    `engine` defaults to the detected one; `image` (Linux) to the local podman image for the target when
    podman is the engine, else the catalogue's image name (cibuildwheel pins it).
    """
    from pipeline.targets import get_target

    target = get_target(job.target)
    if job.kind != "sdist":
        raise RewheelError(
            f"{job.id}: cibuildwheel builds sdists; a {job.kind} source uses the wheel-source backend"
        )
    if not (target.is_linux or target.is_windows):
        raise RewheelError(f"{job.id}: target {target.name} is not a platform cibuildwheel builds for")
    options = job.recipe.build.for_target(job.target, backend="cibuildwheel")
    feature_env, feature_settings, _ = feature_switches(job, options)

    config: dict[str, str] = {
        "CIBW_PLATFORM": cibw_platform(target),
        "CIBW_BUILD": build_identifier(target, job.python),
        "CIBW_ARCHS": cibw_arch(target),
    }
    environment = {**options.environment, **feature_env}
    if environment:
        config["CIBW_ENVIRONMENT"] = format_build_environment(environment)
    settings = {**options.config_settings, **feature_settings}
    if settings:
        config["CIBW_CONFIG_SETTINGS"] = format_config_settings(settings)
    if options.before_all:
        config["CIBW_BEFORE_ALL"] = " && ".join(options.before_all)
    if options.before_build:
        config["CIBW_BEFORE_BUILD"] = " && ".join(options.before_build)
    config["CIBW_REPAIR_WHEEL_COMMAND"] = repair_command(job, target)
    tests = test_command(job)
    if tests:
        config["CIBW_TEST_COMMAND"] = tests

    if target.is_linux:
        if engine is _UNSET:
            from pipeline.engines import detect_engine

            engine = detect_engine()
        config["CIBW_CONTAINER_ENGINE"] = engine.cibw_container_engine() if engine else "docker"
        if image is _UNSET:
            image = local_image_for(target, engine, tuple(job.recipe.python))
        chosen = image or cibw_image(target)
        if chosen:
            config[image_variable(target)] = chosen

    # Read only when needed: importing cibuildwheel costs a noticeable part of a no-op run's second.
    known = _known_cibuildwheel_options() if options.cibuildwheel else set()
    for name, value in options.cibuildwheel.items():
        if name in RECIPE_OWNED_OPTIONS:
            raise RecipeError(
                f"{job.recipe.path}: [build] cibuildwheel sets {name!r}; use {RECIPE_OWNED_OPTIONS[name]} instead"
            )
        if name not in known:
            raise RecipeError(
                f"{job.recipe.path}: [build] cibuildwheel: {name!r} is not a cibuildwheel option"
            )
        config[cibw_variable(name)] = _format_option(name, value)
    return config


# -- the backend --------------------------------------------------------------------------------------------
def cibuildwheel_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cibuildwheel")
    except PackageNotFoundError:
        return ""


def _host_arch() -> str:
    return os.uname().machine if hasattr(os, "uname") else ""


class CibuildwheelBackend:
    """Runs the real cibuildwheel; Linux targets in a container engine, Windows targets on Windows hosts."""

    name = "cibuildwheel"

    def __init__(self) -> None:
        self._image_checks: dict[str, str | None] = {}

    def unavailable_reason(self, job: Job) -> str | None:
        from pipeline.targets import get_target

        target = get_target(job.target)
        if job.kind != "sdist":
            return f"cibuildwheel builds sdists; {job.recipe.name} {job.version} is a {job.kind} source"
        if not cibuildwheel_version():
            return "cibuildwheel is not installed (pip install cibuildwheel)"
        if target.is_windows:
            if sys.platform != "win32":
                return f"cibuildwheel builds Windows wheels only on Windows (this host is {sys.platform})"
            return None
        if not target.is_linux:
            return f"target {target.name} is not a platform cibuildwheel builds for"
        from pipeline.engines import detect_engine, engine_problem

        engine = detect_engine()
        if engine is None:
            return engine_problem()
        if target.arch != _host_arch() and not Path(f"/proc/sys/fs/binfmt_misc/qemu-{target.arch}").exists():
            return (
                f"{target.arch} containers need qemu-user binfmt registration on this {_host_arch()} host "
                f"(apt-get install qemu-user-static binfmt-support)"
            )
        local = self._local_image(target, engine, job)
        if local is not None:
            return local.unavailable_reason() if not local.exists() else None
        return self._image_problem(engine, target)

    def provision(self, job: Job) -> None:
        """Install what this backend needs on this host when it was asked for by name (`--backend
        cibuildwheel`): for Linux targets with no working container engine, podman, runc and debootstrap
        (apt-get, as root). `auto` never installs anything; it picks zig instead. MissingTool says the exact
        command when rewheel may not install."""
        from pipeline.targets import get_target

        if not get_target(job.target).is_linux or sys.platform != "linux":
            return
        from pipeline.engines import FORCE_VARIABLE, detect_engine

        if detect_engine() is not None or os.environ.get(FORCE_VARIABLE, "").strip().lower() in (
            "none",
            "docker",
        ):
            return
        from pipeline.system_packages import ensure_toolset, missing_packages, toolsets

        missing = missing_packages(list(toolsets()["podman"].packages))
        if missing:
            reporter.say(
                f"cibuildwheel: no container engine works here; installing {', '.join(missing)} (apt-get)"
            )
        ensure_toolset("podman")
        detect_engine(refresh=True)

    def _local_image(self, target: Target, engine: Engine, job: Job) -> PodmanImage | None:
        if engine.name != "podman":
            return None
        from pipeline.runtimes.podman_images import image_for_target

        return image_for_target(target.name, job.recipe.python)

    def _image_problem(self, engine: Engine, target: Target) -> str | None:
        """None when the target's image is in the engine's store or its registry answers; else why not."""
        from cibuildwheel.options import _get_pinned_container_images  # type: ignore[import-not-found,unused-ignore]

        name = cibw_image(target) or ""
        arch = cibw_arch(target)
        images = _get_pinned_container_images()  # a ConfigParser: one section per architecture
        reference = images[arch].get(name, name) if arch in images else name
        if reference in self._image_checks:
            return self._image_checks[reference]
        problem: str | None = None
        if engine.run(
            "image", "exists" if engine.name == "podman" else "inspect", reference, check=False
        ).returncode:
            try:
                probe = engine.run("manifest", "inspect", reference, check=False, timeout=60)
                if probe.returncode != 0:
                    reason = error_line(probe.stderr, default="no answer")
                    problem = (
                        f"image {name} for {target.name} is not in {engine.name}'s store and its registry cannot be "
                        f"reached ({reason}); the zig backend builds without it"
                    )
            except subprocess.TimeoutExpired:
                problem = f"image {name} for {target.name}: its registry did not answer within 60 s"
        self._image_checks[reference] = problem
        return problem

    def fingerprint(self, job: Job) -> dict[str, str]:
        from pipeline.targets import get_target

        target = get_target(job.target)
        result = {"backend": self.name, "cibuildwheel": cibuildwheel_version()}
        if target.is_linux:
            from pipeline.engines import detect_engine

            engine = detect_engine()
            result["engine"] = f"{engine.name} {engine.version}" if engine else "none"
            config = cibuildwheel_config(job, engine=engine)
            result["image"] = config.get(image_variable(target), "")
        return result

    def build(self, request: BuildRequest) -> BuildResult:
        from pipeline.targets import get_target

        job = request.job
        target = get_target(job.target)
        if request.source_tree is None:
            raise RewheelError(f"{job.id}: cibuildwheel needs a prepared source tree")
        engine = None
        if target.is_linux:
            from pipeline.engines import detect_engine, engine_problem

            engine = detect_engine()
            if engine is None:
                raise RewheelError(f"{job.id}: {engine_problem()}")
        config = cibuildwheel_config(job, engine=engine)
        if engine is not None:
            local = self._local_image(target, engine, job)
            # Made (once, then cached) only when this build really uses it: a recipe may name another image.
            if local is not None and config.get(image_variable(target)) == local.image_reference():
                local.build()
        options = job.recipe.build.for_target(job.target, backend="cibuildwheel")
        _, _, notes = feature_switches(job, options)

        request.out_dir.mkdir(parents=True, exist_ok=True)
        request.work_dir.mkdir(parents=True, exist_ok=True)
        # The user's own CIBW_* settings must not leak into a recipe build: the recipe is the whole story.
        env = {k: v for k, v in os.environ.items() if not k.startswith("CIBW_")}
        if engine is not None:
            env.update(engine.env)
        env.update(config)
        env["CIBW_BUILD_VERBOSITY"] = env.get("CIBW_BUILD_VERBOSITY", "1")
        command = [
            sys.executable, "-m", "cibuildwheel",
            "--only", config["CIBW_BUILD"],
            "--output-dir", str(request.out_dir.resolve()),
            ".",
        ]  # fmt: skip
        before = set(request.out_dir.glob("*.whl"))
        log_path = request.work_dir / "cibuildwheel.log"
        started = time.monotonic()
        reporter.say(f"cibuildwheel: building {config['CIBW_BUILD']} for {job.id}")
        returncode, log = _run_logged(command, cwd=request.source_tree, env=env, log_path=log_path)
        elapsed = time.monotonic() - started
        if returncode != 0:
            raise RewheelError(
                f"{job.id}: cibuildwheel failed (exit {returncode}): {_last_error(log)} (log: {log_path})"
            )
        wheels = sorted(set(request.out_dir.glob("*.whl")) - before)
        if not wheels:
            raise RewheelError(
                f"{job.id}: cibuildwheel exited 0 but left no wheel in {request.out_dir} (log: {log_path})"
            )
        if target.is_linux:
            _check_libc_family(wheels, target, config.get(image_variable(target), ""), job.id)
        versions = {"cibuildwheel": cibuildwheel_version()}
        if engine is not None:
            versions[engine.name] = engine.version
            versions["image"] = config.get(image_variable(target), "")
        printable = [*(f"{k}={v}" for k, v in config.items()), *command]
        return BuildResult(
            wheels=wheels,
            commands=[printable],
            tool_versions=versions,
            repaired=True,  # cibuildwheel ran the repair command (auditwheel/delvewheel) itself
            log=log,
            notes=[*notes, f"cibuildwheel took {elapsed:.1f} s"],
        )


def _check_libc_family(wheels: list[Path], target: Target, image: str, job_id: str) -> None:
    """cibuildwheel never checks that a musllinux image is musl (a glibc image "succeeds" with a manylinux
    wheel), so rewheel does: each wheel must carry the target's libc family."""
    from packaging.utils import parse_wheel_filename

    family = "musllinux_" if target.is_musl else "manylinux"
    for wheel in wheels:
        platforms = {tag.platform for tag in parse_wheel_filename(wheel.name)[3]}
        if not any(p.startswith(family) for p in platforms):
            raise RewheelError(
                f"{job_id}: cibuildwheel built {wheel.name} in image {image}, which is not a {family.rstrip('_')} "
                f"wheel: the image does not provide {target.libc} (cibuildwheel does not check this)"
            )


def _run_logged(command: list[str], *, cwd: Path, env: dict[str, str], log_path: Path) -> tuple[int, str]:
    """Run, copying output to a log file and to the reporter (unless muted); returns (exit code, output)."""
    lines: list[str] = []
    with log_path.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            log.write(line)
            reporter.say(line.rstrip("\n"))
        returncode = process.wait()
    return returncode, "".join(lines)


def _last_error(log: str) -> str:
    """The most telling line of a failed cibuildwheel run (its own error line, else the last line)."""
    return error_line(
        log,
        lambda line: (
            line.startswith(("cibuildwheel: error", "Error:", "error:")) or "Error" in line.split(":", 1)[0]
        ),
    )
