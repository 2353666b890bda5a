"""Native libraries for the zig backend: fetched from Debian's source archive by pinned hash, cross-built for
the target as static PIC libraries, cached by (target, library, sha256, options, zig version)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, unavailable
from helpers.elf import ar_members_machines

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="native builds run on Linux hosts"
)


def _libffi():  # type: ignore[no-untyped-def]
    from pipeline.recipe import load_recipe

    (library,) = load_recipe(REPO / "recipes" / "cffi.toml").native
    return library


def test_deb_src_lines_come_from_the_hosts_own_sources() -> None:
    from pipeline.builders.backends.zig.native_libraries import _host_deb_source_lines

    if not Path("/etc/apt").is_dir():
        pytest.skip("not a Debian-like host")
    lines = _host_deb_source_lines()
    assert lines, "this Debian host has apt sources, so deb-src lines must be derived"
    assert all(line.startswith("deb-src ") for line in lines)


def test_native_environment_points_only_at_target_prefixes(tmp_path: Path) -> None:
    from pipeline.builders.backends.zig.native_libraries import NativePrefix, native_environment

    prefix = tmp_path / "libffi"
    (prefix / "lib" / "pkgconfig").mkdir(parents=True)
    env = native_environment([NativePrefix(_libffi(), prefix)])
    assert env["CPPFLAGS"] == f"-I{prefix / 'include'}"
    assert env["LDFLAGS"] == f"-L{prefix / 'lib'}"
    # PKG_CONFIG_LIBDIR replaces the default search path: the host's libffi.pc must not be found.
    assert env["PKG_CONFIG_LIBDIR"] == env["PKG_CONFIG_PATH"] == str(prefix / "lib" / "pkgconfig")
    assert native_environment([]) == {}


def test_unsupported_build_kind_is_one_line() -> None:
    from pipeline.builders.backends.zig.native_libraries import build_native_library
    from pipeline.errors import RewheelError

    library = _libffi().model_copy(update={"build": "meson"})
    with pytest.raises(RewheelError, match="build 'meson' is not supported by the zig backend"):
        build_native_library(library, "musllinux_1_2_x86_64")


def test_debian_source_with_wrong_hash_is_refused() -> None:
    from pipeline.builders.backends.zig.native_libraries import fetch_native_source
    from pipeline.errors import HashMismatch

    if not Path("/usr/bin/apt-get").exists():
        unavailable("apt-get is needed to fetch Debian sources")
    library = _libffi().model_copy(update={"sha256": "0" * 64})
    with pytest.raises(HashMismatch, match="libffi_3.4.4.orig.tar.gz"):
        fetch_native_source(library)


@pytest.mark.slow
# One target keeps the suite lean (configure runs ~200 zig invocations: about a minute on an idle machine);
# it is the one the cffi test needs anyway. Other targets build the same way through the same code.
@pytest.mark.parametrize(("target", "machine"), [("manylinux_2_17_aarch64", "EM_AARCH64")])
def test_libffi_is_built_for_the_target_and_cached(target: str, machine: str) -> None:
    from pipeline.builders.backends.zig.native_libraries import build_native_library

    try:
        from pipeline.builders.backends.zig.toolchain import zig_executable

        zig_executable()
    except Exception as exc:
        unavailable(str(exc))
    started = time.monotonic()
    prefix = build_native_library(_libffi(), target)
    first = time.monotonic() - started
    assert (prefix.include_dir / "ffi.h").is_file()
    (archive,) = [d / "libffi.a" for d in prefix.lib_dirs if (d / "libffi.a").is_file()]
    assert ar_members_machines(archive) == {machine}
    assert not list(prefix.prefix.rglob("*.so*")), "static only: nothing for auditwheel to bundle"
    pc = next(prefix.prefix.rglob("libffi.pc")).read_text()
    assert f"prefix={prefix.prefix}" in pc  # rewritten from the staging folder to the cached prefix
    built_at = archive.stat().st_mtime_ns
    again = build_native_library(_libffi(), target)
    assert again.prefix == prefix.prefix
    assert archive.stat().st_mtime_ns == built_at, "a built prefix is reused, not rebuilt"
    print(f"\nlibffi for {target}: {first:.1f} s first call")
