"""armv7l (32-bit Raspberry Pi): built with zig and proven under qemu-arm, as aarch64 is.

Fast tests check what the armv7l targets derive: zig's hard-float triples and the ARMv7-A / VFPv3-D16 / Thumb-2
baseline (no NEON), Alpine's libc soname, the 32-bit C type sizes a cross build's pyconfig.h must carry (checked
by the target's own compiler), the binfmt_misc pattern for 32-bit Arm ELF files, musl's armhf export list and
the recipes that list the targets.

Slow tests build for real: the recipes' manylinux_2_31_armv7l wheels import on Debian 12's armhf python3.11
under qemu-arm, and `rewheel build -r` on the seed set (cffi, pycparser, pyyaml, markupsafe) publishes a
musllinux_1_2_armv7l wheelhouse that pip, running inside the armv7 musl CPython, installs from the index alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name, parse_wheel_filename

from conftest import ensure_runtime, need_toolset, unavailable
from helpers.target_pip import PIP, clean_environment, pip_install_from_index

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "tests" / "data" / "armv7-seed-requirements.txt"
MUSL_ARMV7 = "musl-cpython-3.11-armv7l"
ARMHF = "debian-armhf-python3.11"
PI_RECIPES = ("cffi", "markupsafe", "pyyaml", "pillow", "ujson")
USE = """
import cffi, _cffi_backend, pycparser, markupsafe, markupsafe._speedups, yaml, platform, sysconfig
ffi = cffi.FFI()
ffi.cdef("int abs(int);")
assert ffi.dlopen(None).abs(-7) == 7                      # libffi built for arm-linux-musleabihf, pycparser
assert yaml.load("a: [1, 2]", Loader=yaml.CSafeLoader) == {"a": [1, 2]}   # libyaml linked into yaml._yaml
assert markupsafe.escape("<b>") == "&lt;b&gt;"
assert platform.machine() == "armv7l", platform.machine()
print("ALL-IMPORTED", sysconfig.get_config_var("EXT_SUFFIX"))
"""


# ---- what the targets derive (fast) -------------------------------------------------------------------------


def test_zig_triples_are_hard_float_with_the_pi_baseline() -> None:
    from pipeline.builders.backends.zig.toolchain import (
        builds_for,
        cpu_flags,
        gnu_host,
        musl_libc_soname,
        zig_triple,
    )

    assert zig_triple("musllinux_1_2_armv7l") == "arm-linux-musleabihf"
    assert zig_triple("manylinux_2_17_armv7l") == "arm-linux-gnueabihf.2.17"
    assert zig_triple("manylinux_2_31_armv7l") == "arm-linux-gnueabihf.2.31"
    assert gnu_host("musllinux_1_2_armv7l") == "arm-linux-musleabihf"
    assert gnu_host("manylinux_2_17_armv7l") == "arm-linux-gnueabihf"
    # Alpine armv7's libc is libc.musl-armv7.so.1 (its loader ld-musl-armhf.so.1).
    assert musl_libc_soname("musllinux_1_2_armv7l") == "libc.musl-armv7.so.1"
    assert musl_libc_soname("manylinux_2_17_armv7l") is None
    assert cpu_flags("musllinux_1_2_armv7l") == ["-mcpu=generic+v7a+vfp3d16-neon-d32"]
    assert cpu_flags("musllinux_1_2_aarch64") == []
    assert builds_for("musllinux_1_2_armv7l-musl1.2.3") and builds_for("manylinux_2_17_armv7l")
    assert not builds_for("manylinux_2_12_x86_64")  # older than zig's oldest glibc: unchanged


def test_the_compiler_wrapper_compiles_for_armv7_a_vfpv3_d16_without_neon(tmp_path: Path) -> None:
    """The wrapper's output carries the baseline in its ARM attributes: v7, Thumb-2, VFPv3-D16, hard-float
    argument passing, and no NEON (zig's own default for arm has NEON and 32 VFP registers)."""
    from pipeline.builders.backends.zig.toolchain import write_toolchain

    readelf = __import__("shutil").which("readelf")
    if not readelf:
        unavailable("readelf not found (Debian binutils)")
    source = tmp_path / "f.c"
    source.write_text("double f(double a, double b) { return a * b + 1.0; }\n", encoding="utf-8")
    for target in ("musllinux_1_2_armv7l", "manylinux_2_17_armv7l"):
        toolchain = write_toolchain(target, tmp_path / target)
        obj = tmp_path / f"{target}.o"
        subprocess.run([str(toolchain.cc), "-O2", "-c", str(source), "-o", str(obj)], check=True)
        attributes = subprocess.run(
            [readelf, "-A", str(obj)], capture_output=True, text=True, check=True
        ).stdout
        assert "Tag_CPU_arch: v7" in attributes
        assert "Tag_THUMB_ISA_use: Thumb-2" in attributes
        assert "Tag_FP_arch: VFPv3-D16" in attributes
        assert "Tag_ABI_VFP_args: VFP registers" in attributes
        assert "NEON" not in attributes, attributes


def test_target_headers_carry_the_32_bit_sizes_the_target_compiler_has(tmp_path: Path) -> None:
    """pyconfig.h for armv7l says what the target's compiler says: every SIZEOF_/ALIGNOF_ the build Python's
    configure recorded is checked with _Static_assert by zig for the target (a 64-bit value fails to compile)."""
    from pipeline.builders.backends.zig.target_sysconfig import find_build_python, write_target_headers
    from pipeline.builders.backends.zig.toolchain import write_toolchain

    python = find_build_python("3.11")
    if python is None:
        unavailable("no CPython 3.11 with headers on this machine")
    assert python is not None
    for target in ("musllinux_1_2_armv7l", "manylinux_2_17_armv7l"):
        include = write_target_headers(python, target, tmp_path / target / "include")
        text = (include / "pyconfig.h").read_text(encoding="utf-8")
        assert "#define SIZEOF_VOID_P 4" in text and "#define SIZEOF_LONG 4" in text
        types = {
            "SIZEOF_LONG": "long", "SIZEOF_SIZE_T": "size_t", "SIZEOF_VOID_P": "void *",
            "SIZEOF_UINTPTR_T": "uintptr_t", "SIZEOF_LONG_DOUBLE": "long double", "SIZEOF_TIME_T": "time_t",
            "SIZEOF_PTHREAD_T": "pthread_t", "SIZEOF_OFF_T": "off_t", "SIZEOF_WCHAR_T": "wchar_t",
        }  # fmt: skip
        checks = "".join(f'_Static_assert(sizeof({t}) == {m}, "{m}");\n' for m, t in types.items())
        checks += '_Static_assert(_Alignof(long) == ALIGNOF_LONG, "ALIGNOF_LONG");\n'
        checks += '_Static_assert(_Alignof(size_t) == ALIGNOF_SIZE_T, "ALIGNOF_SIZE_T");\n'
        probe = tmp_path / target / "sizes.c"
        probe.write_text(
            '#include "pyconfig.h"\n#include <stddef.h>\n#include <stdint.h>\n#include <time.h>\n'
            "#include <pthread.h>\n#include <sys/types.h>\n#include <wchar.h>\n" + checks,
            encoding="utf-8",
        )
        toolchain = write_toolchain(target, tmp_path / target / "bin")
        compiled = subprocess.run(
            [str(toolchain.cc), f"-I{include}", "-c", str(probe), "-o", str(probe.with_suffix(".o"))],
            capture_output=True, text=True,
        )  # fmt: skip
        assert compiled.returncode == 0, compiled.stderr[-2000:]


def test_binfmt_pattern_matches_32_bit_arm_elf_files() -> None:
    from pipeline.runtimes.binfmt import registration

    line = registration("armv7l", "/usr/bin/qemu-arm")
    name, kind, _, magic, _mask, interpreter, flags = line.lstrip(":").split(":")
    assert (name, kind, interpreter, flags) == ("rewheel-qemu-armv7l", "M", "/usr/bin/qemu-arm", "FP")
    magic_bytes = bytes(int(h, 16) for h in magic.split("\\x")[1:])
    assert magic_bytes[4] == 1  # ELFCLASS32
    assert int.from_bytes(magic_bytes[18:20], "little") == 40  # EM_ARM
    # The aarch64 entry is unchanged: ELFCLASS64, EM_AARCH64.
    aarch64 = bytes(int(h, 16) for h in registration("aarch64", "/q").split(":")[4].split("\\x")[1:])
    assert aarch64[4] == 2 and int.from_bytes(aarch64[18:20], "little") == 183


def test_runtimes_name_the_armv7_loader_qemu_and_targets() -> None:
    from pipeline.runtimes import get_runtime
    from pipeline.runtimes.musl_cpython import ldso_name, loader_package, musl_triplet, qemu_name

    assert (ldso_name("armv7l"), qemu_name("armv7l")) == ("ld-musl-armhf.so.1", "qemu-arm")
    assert musl_triplet("armv7l") == "arm-linux-musleabihf"
    assert (ldso_name("aarch64"), qemu_name("aarch64")) == ("ld-musl-aarch64.so.1", "qemu-aarch64")
    musl = get_runtime(MUSL_ARMV7)
    assert musl.targets == ("musllinux_1_2_armv7l",)
    assert musl.expected_ext_suffix() == ".cpython-311-arm-linux-musleabihf.so"  # type: ignore[attr-defined]
    loader = loader_package("armv7l", "1.2.5")
    assert (loader.filename, loader.suite) == ("musl_1.2.5-3.1~deb13u1_armhf.deb", "trixie")
    assert get_runtime(f"{MUSL_ARMV7}-musl1.2.3").targets == ("musllinux_1_2_armv7l-musl1.2.3",)
    root = get_runtime(ARMHF)
    # its data's target first, then every manylinux armv7l level bookworm's glibc 2.36 loads
    assert root.targets[0] == "manylinux_2_31_armv7l" and all(t.endswith("_armv7l") for t in root.targets)
    assert all(d.package.endswith(":armhf") and d.filename.endswith("_armhf.deb") for d in root.debs)  # type: ignore[attr-defined]


def test_musl_profiles_have_the_armhf_export_list_with_provenance() -> None:
    from pipeline.profiles import load_provenance, musl_exports

    for profile in ("musl_1_2_5", "musl_1_2_3"):
        names = musl_exports(profile, "armv7l")
        # 32-bit Arm only: the EABI helpers and the time64 entry points (musl 1.2's 64-bit time_t).
        assert {"__aeabi_memcpy", "__clock_gettime64", "malloc", "pthread_create"} <= names
        assert "__aeabi_memcpy" not in musl_exports(profile, "aarch64")
        assert "_armhf.deb" in load_provenance(profile)["source"]


def test_pi_recipes_list_the_armv7l_targets() -> None:
    from pipeline.recipe import load_recipe

    for name in PI_RECIPES:
        targets = load_recipe(REPO / "recipes" / f"{name}.toml").targets
        # manylinux_2_31: cibuildwheel's only armv7l manylinux image (the release workflow builds with it).
        assert {"musllinux_1_2_armv7l", "manylinux_2_31_armv7l"} <= set(targets), name


def test_gaps_resolves_armv7l_through_uv_with_its_own_tags() -> None:
    from pipeline.gaps import target_tags, uv_platform
    from pipeline.targets import get_target

    # uv has no armv7 platform: the x86_64 platform of the same libc stands in for resolution only.
    assert uv_platform(get_target("musllinux_1_2_armv7l")) == "x86_64-unknown-linux-musl"
    assert uv_platform(get_target("manylinux_2_17_armv7l")) == "x86_64-manylinux_2_17"
    platforms = {t.platform for t in target_tags(get_target("musllinux_1_2_armv7l"), "3.11")}
    assert "musllinux_1_2_armv7l" in platforms and not any("x86_64" in p for p in platforms)


# ---- built and imported (slow) ------------------------------------------------------------------------------


def _rewheel_env(shared_cache: Path) -> dict[str, str]:
    return {**os.environ, "REWHEEL_CACHE_DIR": str(shared_cache)}


@pytest.mark.slow
def test_manylinux_armv7l_recipe_wheels_import_on_the_armhf_root(
    shared_cache: Path, runtime_env, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """cffi (with libffi built for arm-linux-gnueabihf.2.17), markupsafe, pyyaml and ujson: built, repaired,
    verified against manylinux_2_31_armv7l and imported (each recipe's test command) on Debian 12's armhf
    python3.11 under qemu-arm. Pillow lists the target too; its dozen native libraries are left to
    `nox -s build-armv7` to keep this test's cold cost small."""
    from pipeline.targets import get_target

    need_toolset("qemu")
    ensure_runtime(ARMHF)
    recipes = [str(REPO / "recipes" / f"{name}.toml") for name in ("cffi", "markupsafe", "pyyaml", "ujson")]
    completed = subprocess.run(
        [
            sys.executable, "-m", "pipeline", "build", *recipes, "--target", "manylinux_2_31_armv7l",
            "--python", "3.11", "--backend", "zig", "--require-import", "--json",
            "--wheelhouse", str(shared_cache / "test-wheelhouses" / "manylinux_2_31_armv7l"),
        ],
        capture_output=True, text=True, cwd=REPO, env=_rewheel_env(shared_cache),
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-4000:]
    result = json.loads(completed.stdout)
    jobs = result["jobs"]
    assert len(jobs) == 4 and all(job["ok"] for job in jobs), jobs
    for job in jobs:
        smokes = job["smoke"]
        assert smokes and all(s["status"] == "passed" and s["runtime"] == ARMHF for s in smokes), smokes
        (wheel,) = (Path(w) for w in job["wheels"])
        # Linked against zig's glibc 2.31 stubs, repaired to the lowest policy the symbols allow.
        tags = {t.platform for t in parse_wheel_filename(wheel.name)[3]}
        assert tags and all(get_target("manylinux_2_31_armv7l").accepts(t) for t in tags), wheel.name
        with zipfile.ZipFile(wheel) as archive:
            extensions = [n for n in archive.namelist() if n.endswith(".so") or ".so." in n]
        modules = [n for n in extensions if ".libs/" not in n]
        assert modules and all(n.endswith(".cpython-311-arm-linux-gnueabihf.so") for n in modules), extensions


@pytest.fixture(scope="session")
def seed_wheelhouse(shared_cache: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    work = tmp_path_factory.mktemp("armv7-seed")
    index = work / "index"
    command = [
        sys.executable, "-m", "pipeline", "build", "-r", str(SEED), "--target", "musllinux_1_2_armv7l",
        "--python", "3.11", "--publish", str(index), "--json", "--new-recipes", str(work / "recipes-new"),
        "--wheelhouse", str(shared_cache / "test-wheelhouses" / "musllinux_1_2_armv7l"),
    ]  # fmt: skip
    log = work / "build.log"
    with log.open("w") as stderr:
        completed = subprocess.run(
            command,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=REPO,
            env=_rewheel_env(shared_cache),
        )
    assert completed.returncode == 0, f"build -r failed; log {log}:\n{log.read_text()[-4000:]}"
    return json.loads(completed.stdout), index


@pytest.mark.slow
def test_build_r_publishes_the_seed_wheelhouse_for_musllinux_armv7l(seed_wheelhouse) -> None:  # type: ignore[no-untyped-def]
    from pipeline.index.static import check_index

    result, index = seed_wheelhouse
    assert result["ok"] and not result["problems"]
    gaps = {g["name"]: g for g in result["gaps"]["requirements"]}
    assert {n for n, g in gaps.items() if g["status"] == "needs-build"} == {"cffi", "markupsafe", "pyyaml"}
    assert gaps["pycparser"]["status"] == "pure"
    assert check_index(index) == []
    wheels = {p.name for p in index.rglob("*.whl")}
    assert len(wheels) == 4
    assert sum(name.endswith("musllinux_1_2_armv7l.whl") for name in wheels) == 3, wheels
    for job in result["build"]["jobs"]:
        assert job["ok"] and all(s.get("status") == "passed" for s in job["smoke"]), job


@pytest.fixture(scope="session")
def pip_for_target(pypi_file, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    from pipeline.unpack import unpack

    return unpack(pypi_file(*PIP), tmp_path_factory.mktemp("pip-for-armv7") / "pip")


@pytest.mark.slow
def test_pip_inside_the_armv7_musl_cpython_installs_the_seed_from_the_index_alone(
    seed_wheelhouse, pip_for_target: Path, runtime_env, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    need_toolset("qemu")
    built = ensure_runtime(MUSL_ARMV7)
    # pip learns musl's version by running /lib/ld-musl-armhf.so.1: binfmt_misc (qemu-arm) and the wrapper's
    # private mount namespace make that work under emulation.
    problem = built.child_exec_problem()
    if problem:
        unavailable(f"{MUSL_ARMV7}: {problem}")
    interpreter = Path(built.python())
    _, index = seed_wheelhouse
    site = tmp_path / "site"
    env = clean_environment()
    install = pip_install_from_index(
        interpreter, pip_for_target, index, SEED, site, report=tmp_path / "report.json"
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    installed = {canonicalize_name(p.name.split("-")[0]) for p in site.glob("*.dist-info")}
    assert installed == {"cffi", "markupsafe", "pycparser", "pyyaml"}
    chosen = [
        Path(i["download_info"]["url"]).name
        for i in json.loads((tmp_path / "report.json").read_text())["install"]
    ]
    binary = {w: {t.platform for t in parse_wheel_filename(w)[3]} for w in chosen}
    binary = {w: p for w, p in binary.items() if p != {"any"}}
    # pip found musl 1.2 on armv7l by running the real loader: it chose the musllinux armv7l wheels.
    assert len(binary) == 3 and all("musllinux_1_2_armv7l" in p for p in binary.values()), binary
    used = subprocess.run(
        [str(interpreter), "-s", "-c", USE],
        env={**env, "PYTHONPATH": str(site)}, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert used.returncode == 0, used.stderr[-3000:]
    assert "ALL-IMPORTED .cpython-311-arm-linux-musleabihf.so" in used.stdout
