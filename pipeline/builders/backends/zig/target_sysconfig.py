"""Make a host CPython build extensions for another target: a target _sysconfigdata and target headers.

setuptools (through sysconfig) asks the running interpreter how to compile: CC, LDSHARED, EXT_SUFFIX, the
include dir. CPython lets a cross build substitute the whole answer: `_PYTHON_SYSCONFIGDATA_NAME` names the
_sysconfigdata module to load (found through PYTHONPATH) and `_PYTHON_HOST_PLATFORM` sets
sysconfig.get_platform(), which names the wheel's platform tag. So the build Python is a real CPython of the
job's version (the wheel's cp3XX tags and the headers' ABI come from it) and everything target-specific comes
from the files written here.

Headers: the build Python's own include dir, copied, with pyconfig.h adjusted for the target. Between x86_64
and aarch64 builds of the same CPython only these lines differ, none of which changes the C API's ABI:
  HAVE_GCC_ASM_FOR_X64, HAVE_GCC_ASM_FOR_X87   (x86 inline assembly; undefined for aarch64)
  PY_SUPPORT_TIER                             (informational: 1 x86_64 glibc, 2 aarch64 glibc, 0 musl)
  PY_HAVE_PERF_TRAMPOLINE                      (3.12+; set on both arches, kept as is)
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pipeline.builders.backends.zig.toolchain import Toolchain, gnu_host, zig_triple
from pipeline.builders.toolcache import remembered
from pipeline.errors import RewheelError
from pipeline.targets import get_target

_DUMP_CONFIG = (
    "import importlib, json, sys, sysconfig;"
    "m = importlib.import_module(sysconfig._get_sysconfigdata_name());"
    "print(json.dumps({'version': '%d.%d' % sys.version_info[:2], 'full_version': sys.version.split()[0],"
    " 'executable': sys.executable, 'vars': m.build_time_vars}))"
)


@dataclass(frozen=True)
class BuildPython:
    version: str  # "3.11"
    executable: Path
    config: dict[str, object]  # its build_time_vars
    full_version: str = ""  # "3.11.7": what the build depends on, unlike the path it was found at

    @property
    def include_dir(self) -> Path:
        return Path(str(self.config["INCLUDEPY"]))


def _candidate_pythons(version: str) -> list[Path]:
    """Where a CPython of `version` may live: an explicit override, PATH, then pyenv's versions folder."""
    candidates: list[Path] = []
    override = os.environ.get(f"REWHEEL_PYTHON_{version.replace('.', '_')}")
    if override:
        candidates.append(Path(override))
    on_path = shutil.which(f"python{version}")
    if on_path:
        candidates.append(Path(on_path))
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    if pyenv_root.is_dir():
        for folder in sorted(pyenv_root.glob(f"{version}.*"), reverse=True):
            if re.fullmatch(rf"{re.escape(version)}\.\d+", folder.name):
                candidates.append(folder / "bin" / f"python{version}")
    return candidates


def find_build_python(version: str) -> BuildPython | None:
    """A CPython `version` with headers on this machine, or None."""

    for candidate in _candidate_pythons(version):
        if not candidate.exists():
            continue
        # Running an interpreter costs 0.2-0.8 s; a no-op `rewheel build` asks for every job's fingerprint, so
        # the answer is remembered while the candidate file keeps its size and mtime.
        data = remembered(
            f"build-python:{candidate}", [candidate], functools.partial(_dump_config, candidate)
        )
        if data is None or data["version"] != version:
            continue
        python = BuildPython(
            version=version,
            executable=Path(str(data["executable"])),
            config=dict(data["vars"]),  # type: ignore[call-overload]
            full_version=str(data.get("full_version", version)),
        )
        if (python.include_dir / "Python.h").is_file():
            return python
    return None


def _dump_config(python: Path) -> dict[str, object] | None:
    result = subprocess.run([str(python), "-c", _DUMP_CONFIG], capture_output=True, text=True)
    if result.returncode != 0:
        return None  # e.g. a pyenv shim for a version that is not selected
    data: dict[str, object] = json.loads(result.stdout)
    return data


# A 32-bit target's C type sizes, where they differ from the 64-bit build Python's pyconfig.h: the C API's
# headers read them (pyhash.h's hash width, longobject.h's conversions, Py_ssize_t limits). Measured with zig
# cc for arm-linux-musleabihf / arm-linux-gnueabihf.2.17 (sizeof/alignof under _FILE_OFFSET_BITS=64, as
# CPython compiles), the same values as the armv7 musl CPython's own configure records. musl has a 64-bit
# time_t on every arch (1.2.0 on); glibc's 32-bit Arm ABI at 2.17 has a 32-bit one.
_ILP32_COMMON = {
    "ALIGNOF_LONG": 4,
    "ALIGNOF_MAX_ALIGN_T": 8,
    "ALIGNOF_SIZE_T": 4,
    "SIZEOF_LONG": 4,
    "SIZEOF_LONG_DOUBLE": 8,
    "SIZEOF_PTHREAD_T": 4,
    "SIZEOF_SIZE_T": 4,
    "SIZEOF_UINTPTR_T": 4,
    "SIZEOF_VOID_P": 4,
}
_ILP32_SIZES = {
    "arm-linux-musleabihf": {**_ILP32_COMMON, "SIZEOF_TIME_T": 8},
    "arm-linux-gnueabihf": {**_ILP32_COMMON, "SIZEOF_TIME_T": 4},
}


def _ilp32_sizes(target: str) -> dict[str, int]:
    return _ILP32_SIZES.get(gnu_host(target), {})


def _support_tier(target: str) -> str:
    triple = zig_triple(target)
    if "musl" in triple:
        return "0"
    return "1" if triple.startswith("x86_64") else "2"


def write_target_headers(python: BuildPython, target: str, dest: Path) -> Path:
    """Copy the build Python's headers into dest/python3.X with pyconfig.h adjusted for `target`."""
    include = dest / python.include_dir.name
    if include.exists():
        shutil.rmtree(include)
    shutil.copytree(python.include_dir, include)
    pyconfig = include / "pyconfig.h"
    text = pyconfig.read_text(encoding="utf-8")
    if not zig_triple(target).startswith("x86_64"):
        for macro in ("HAVE_GCC_ASM_FOR_X64", "HAVE_GCC_ASM_FOR_X87"):
            text = re.sub(rf"^#define {macro} 1$", f"/* #undef {macro} */", text, flags=re.M)
    # (A macro this Python's configure does not record, such as ALIGNOF_MAX_ALIGN_T before 3.12, stays absent.)
    for macro, value in _ilp32_sizes(target).items():
        text = re.sub(rf"^#define {macro} \d+$", f"#define {macro} {value}", text, flags=re.M)
    text = re.sub(
        r"^#define PY_SUPPORT_TIER \d+$", f"#define PY_SUPPORT_TIER {_support_tier(target)}", text, flags=re.M
    )
    pyconfig.write_text(text, encoding="utf-8")
    return include


@dataclass(frozen=True)
class TargetSysconfig:
    module: str  # the _sysconfigdata module name, for _PYTHON_SYSCONFIGDATA_NAME
    folder: Path  # goes on PYTHONPATH
    include: Path  # the target's Python headers
    host_platform: str  # for _PYTHON_HOST_PLATFORM, e.g. linux-aarch64
    ext_suffix: str

    def environment(self) -> dict[str, str]:
        return {
            "_PYTHON_SYSCONFIGDATA_NAME": self.module,
            "_PYTHON_HOST_PLATFORM": self.host_platform,
        }


def cross_variables(
    python: BuildPython, toolchain: Toolchain, include: Path, *, host_cflags: bool, shared_flag: str
) -> dict[str, object]:
    """The build Python's sysconfig variables with its compilers replaced by the target's and everything that
    names host paths or host-only flags emptied; callers add the target's ABI names (SOABI, EXT_SUFFIX, ...)."""
    variables = dict(python.config)
    # Keep the interpreter's optimisation flags, drop debug info (-g) and anything naming host paths.
    opt = " ".join(f for f in str(variables.get("OPT", "-DNDEBUG -O3 -Wall")).split() if f != "-g")
    cflags = (
        " ".join(f for f in str(variables.get("CFLAGS", opt)).split() if f != "-g") if host_cflags else opt
    )
    variables.update(
        {
            "CC": str(toolchain.cc),
            "CXX": str(toolchain.cxx),
            "LDSHARED": f"{toolchain.cc} -shared",
            "BLDSHARED": f"{toolchain.cc} -shared",
            "LDCXXSHARED": f"{toolchain.cxx} -shared",
            "AR": str(toolchain.ar),
            "ARFLAGS": "rcs",
            "OPT": opt,
            "CFLAGS": cflags,
            "CCSHARED": shared_flag,
            "CFLAGSFORSHARED": shared_flag,
            # The host interpreter's -L/-rpath into its own lib folder mean nothing on the target.
            "LDFLAGS": "",
            "PY_LDFLAGS": "",
            "CONFIGURE_LDFLAGS": "",
            "LDFLAGS_NODIST": "",
            "CPPFLAGS": "",
            "PY_CPPFLAGS": "",
            "LIBS": "",
            "SYSLIBS": "",
            "LOCALMODLIBS": "",
            "INCLUDEPY": str(include),
            "CONFINCLUDEPY": str(include),
        }
    )
    return variables


def write_sysconfig_module(variables: dict[str, object], target: str, dest: Path) -> tuple[str, Path]:
    """Write `variables` as a _sysconfigdata module (selected with _PYTHON_SYSCONFIGDATA_NAME): (name, folder)."""
    folder = dest / "sysconfig"
    folder.mkdir(parents=True, exist_ok=True)
    module = f"_sysconfigdata__rewheel_{target.replace('-', '_')}"
    (folder / f"{module}.py").write_text(
        f"# Generated by rewheel's zig backend: the build Python's sysconfig, aimed at {target}.\n"
        f"build_time_vars = {variables!r}\n",
        encoding="utf-8",
    )
    return module, folder


def write_target_sysconfig(python: BuildPython, toolchain: Toolchain, dest: Path) -> TargetSysconfig:
    """Write _sysconfigdata for the build Python re-aimed at toolchain.target, plus the target headers."""
    target = toolchain.target
    host = gnu_host(target)
    digits = python.version.replace(".", "")
    # The target's multiarch triplet, as its own CPython names extensions: x86_64-linux-gnu,
    # aarch64-linux-musl, arm-linux-gnueabihf / arm-linux-musleabihf (armv7l).
    soabi = f"cpython-{digits}-{host}"
    include = write_target_headers(python, target, dest / "include")
    variables = cross_variables(python, toolchain, include, host_cflags=True, shared_flag="-fPIC")
    variables.update(
        {
            "SOABI": soabi,
            "EXT_SUFFIX": f".{soabi}.so",
            "MULTIARCH": host,
            "HOST_GNU_TYPE": host,
            "BUILD_GNU_TYPE": str(python.config.get("HOST_GNU_TYPE", "x86_64-pc-linux-gnu")),
        }
    )
    module, folder = write_sysconfig_module(variables, target, dest)
    return TargetSysconfig(
        module=module,
        folder=folder,
        include=include,
        # sysconfig.get_platform() on the target: linux-x86_64, linux-aarch64, linux-armv7l (uname's machine).
        host_platform=f"linux-{get_target(target).arch}",
        ext_suffix=f".{soabi}.so",
    )


def require_build_python(version: str) -> BuildPython:
    python = find_build_python(version)
    if python is None:
        raise RewheelError(
            f"no CPython {version} with headers found (looked for python{version} on PATH and in pyenv); "
            f"install one or set REWHEEL_PYTHON_{version.replace('.', '_')} to its interpreter"
        )
    return python
