"""Native C libraries a package links against, built for the target before the package itself.

A recipe's [[native]] entries name a library and its pinned source archive. Each is fetched (a URL, a sdist
on the package index, or the orig tarball of a Debian source package through `apt-get source`), checked
against its sha256, cross-compiled with the zig toolchain for the job's target as a static, position-
independent library, and installed into a prefix cached by (target, library, sha256, options, zig version).
The package build then sees it through CPPFLAGS/LDFLAGS/PKG_CONFIG_PATH.

Why build rather than let auditwheel bundle the host's copy: the host's libraries are built for the host's
glibc (Debian 12's libffi needs GLIBC_2.27, so a cffi wheel became manylinux_2_27), and the host has no
musl or aarch64 copies at all. A library built against zig's glibc 2.17 stubs keeps manylinux2014, and
linked statically there is nothing left to bundle.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pipeline.builders.backends.zig.toolchain import (
    cache_lock,
    gnu_host,
    write_toolchain,
    zig_triple,
    zig_version,
)
from pipeline.errors import FetchError, HashMismatch, MissingTool, RewheelError
from pipeline.fetch import Pin, cached_path, fetch
from pipeline.log import log as reporter  # `log` here is a build log file
from pipeline.paths import cache_root, zig_cache_dir
from pipeline.recipe import NativeLibrary
from pipeline.targets import get_target
from pipeline.unpack import unpack
from pipeline.util import error_line

# autotools: ./configure --host=... --disable-shared --enable-static --with-pic (libffi).
# configure: a hand-written ./configure that is not autoconf (zlib's rejects --host and --disable-shared): it is
#   run with only --prefix and the recipe's configure-args; CC/AR/RANLIB/CFLAGS from the environment make it
#   cross-compile, and the recipe asks for a static library in the script's own words (zlib: --static).
# cmake: a CMake project configured for the target as a cross build (libjpeg-turbo): CMAKE_SYSTEM_NAME and
#   CMAKE_SYSTEM_PROCESSOR for the target, the zig wrappers as compiler/ar/ranlib, static PIC libraries, and
#   find_* restricted to the (empty) target root so the host's /usr libraries are never picked up.
SUPPORTED_BUILDS = ("autotools", "configure", "cmake")
_BUILD_LAYOUT_VERSION = "2"  # bump when the way prefixes are built changes, to invalidate old caches


def linkage_for(library: NativeLibrary, target: str) -> str:
    """ "static" or "shared" for `library` on `target`: the recipe's choice, else static, except autotools
    libraries on Windows, which are DLLs that delvewheel bundles (libffi, as upstream's cffi wheels carry it)."""
    if library.linkage:
        return library.linkage
    return "shared" if get_target(target).is_windows and library.build == "autotools" else "static"


# ---------------------------------------------------------------------------------------------- fetching


def _host_deb_source_lines() -> list[str]:
    """deb-src lines for the archives the host already uses (its own apt sources, deb entries only).

    Deriving them keeps rewheel free of any archive address and follows whatever mirror the machine uses."""
    lines: list[str] = []
    etc = Path("/etc/apt")
    files = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list"))]
    for file in files:
        if not file.is_file():
            continue
        for raw in file.read_text(encoding="utf-8", errors="replace").splitlines():
            line = raw.split("#", 1)[0].strip()
            if line.startswith("deb "):
                lines.append("deb-src" + line[3:])
    for file in sorted((etc / "sources.list.d").glob("*.sources")):
        for stanza in file.read_text(encoding="utf-8", errors="replace").split("\n\n"):
            fields: dict[str, str] = {}
            for raw in stanza.splitlines():
                if raw.startswith("#") or ":" not in raw:
                    continue
                key, _, value = raw.partition(":")
                fields[key.strip().lower()] = value.strip()
            if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
                continue
            options = (
                f"[signed-by={fields['signed-by']}] " if fields.get("signed-by", "").startswith("/") else ""
            )
            for uri in fields.get("uris", "").split():
                for suite in fields.get("suites", "").split():
                    lines.append(f"deb-src {options}{uri} {suite} {fields.get('components', '')}".rstrip())
    return sorted(set(lines))


def _pool_urls(library: NativeLibrary) -> list[str]:
    """Where the pinned orig tarball sits in each archive this machine's apt sources name: Debian's mirrors
    serve pool files by exact path, so the pinned version is found even after a newer (security) update
    replaced it in the source index, which `apt-get source` alone would follow."""
    source = str(library.debian_source).split("=", 1)[0]
    prefix = source[:4] if source.startswith("lib") else source[0]
    urls = []
    for line in _host_deb_source_lines():
        words = [w for w in line.split() if not w.startswith("[") and not w.endswith("]")][1:]
        if len(words) < 3 or not words[0].startswith(("http://", "https://")):
            continue
        for component in words[2:]:
            urls.append(f"{words[0].rstrip('/')}/pool/{component}/{prefix}/{source}/{library.filename}")
    return list(dict.fromkeys(urls))


def _fetch_debian_pool(library: NativeLibrary, cache: Path) -> Path:
    """The pinned orig tarball, from the pool folder of the archives the host uses (exact file, exact hash)."""
    pin = Pin(filename=library.filename, sha256=library.sha256)
    target = cached_path(pin, cache)
    if target.is_file():
        return target
    urls = _pool_urls(library)
    for url in urls:
        try:
            reporter.say(
                f"native: fetching {library.filename} (Debian source {library.debian_source}, pinned)"
            )
            return fetch(Pin(filename=library.filename, sha256=library.sha256, url=url), cache)
        except HashMismatch:
            raise
        except FetchError:
            continue  # not in this archive (e.g. the security archive for a point-release version)
    raise FetchError(
        f"native library {library.name}: the pinned {library.filename} (Debian source {library.debian_source}) "
        f"is in none of the {len(urls)} archive pools this machine's apt sources name; pin a version the "
        "archive still serves"
    )


def fetch_native_source(library: NativeLibrary) -> Path:
    """The verified, cached source archive of a [[native]] entry."""
    cache = cache_root() / "sha256"
    if library.debian_source:
        return _fetch_debian_pool(library, cache)
    if library.url or library.project:
        pin = Pin(
            filename=library.filename,
            sha256=library.sha256,
            url=library.url,
            project=library.project,
            version=library.version,
        )
        return fetch(pin, cache)
    raise RewheelError(f"native library {library.name}: needs one of url, project or debian-source")


# ---------------------------------------------------------------------------------------------- building


@dataclass(frozen=True)
class NativePrefix:
    library: NativeLibrary
    prefix: Path

    @property
    def include_dir(self) -> Path:
        return self.prefix / "include"

    @property
    def lib_dirs(self) -> list[Path]:
        return [d for d in (self.prefix / "lib", self.prefix / "lib64") if d.is_dir()]


def prefix_for(library: NativeLibrary, target: str) -> Path:
    """The cached prefix, keyed by what the library's build sees: the zig triple (not the target name:
    win_amd64, win_amd64-servercore and win_amd64-nanoserver compile with one triple and share one build),
    the linkage, the source, the options and zig's version."""
    triple = zig_triple(target)
    linkage = linkage_for(library, target)
    key = "\n".join(
        [_BUILD_LAYOUT_VERSION, triple, linkage, library.sha256, library.build, *library.configure_args,
         zig_version()]
    )  # fmt: skip
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_root() / "native" / triple / f"{library.name}-{library.version}-{linkage}-{digest}"


def _run(command: list[str], cwd: Path, env: dict[str, str], log: Path, what: str) -> None:
    reporter.say(
        f"native: {what}"
    )  # one line per stage (configure, make, make install), a heartbeat while it runs
    with log.open("a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        try:
            result = reporter.run(command, cwd=cwd, env=env, label=what, stdout=out, prefix="native")
        except OSError as exc:  # e.g. a source without ./configure: one line, not a traceback
            raise RewheelError(f"{what} cannot run {command[0]}: {exc.strerror or exc}") from None
    if result.returncode != 0:
        last = error_line(log.read_text(encoding="utf-8", errors="replace"), lambda ln: "error" in ln.lower())
        raise RewheelError(f"{what} failed (exit {result.returncode}): {last} (log: {log})")


def _source_root(folder: Path) -> Path:
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else folder


def missing_build_tool(library: NativeLibrary) -> str | None:
    """Why `library` cannot be built on this host (a build tool it needs is absent), or None."""
    needed = {"cmake": ["cmake"], "autotools": ["make"], "configure": ["make"]}.get(library.build, [])
    for tool in needed:
        if shutil.which(tool) is None:
            return (
                f"native library {library.name} is built with {library.build}, which needs {tool} on PATH "
                f"(Debian package {tool})"
            )
    return None


def build_native_library(library: NativeLibrary, target: str) -> NativePrefix:
    """Build (or reuse) `library` for `target`; returns its installed prefix."""
    if library.build not in SUPPORTED_BUILDS:
        raise RewheelError(
            f"native library {library.name}: build {library.build!r} is not supported by the zig backend "
            f"(supported: {', '.join(SUPPORTED_BUILDS)})"
        )
    from pipeline.runtimes.sources import prime_shared_cache

    prime_shared_cache("native-libraries")  # every built library, from the runtime source
    prefix = prefix_for(library, target)
    done = prefix / ".rewheel-complete"
    if done.is_file():
        return NativePrefix(library, prefix)
    missing = missing_build_tool(library)
    if missing:
        raise MissingTool(missing)
    with cache_lock(prefix):
        if not done.is_file():  # another job may have built it while this one waited
            _build_into(library, target, prefix)
    return NativePrefix(library, prefix)


def _build_into(library: NativeLibrary, target: str, prefix: Path) -> None:
    from pipeline.runtimes.sources import prime_shared_cache

    prime_shared_cache("zig-cache")  # its configure runs zig for this target first
    done = prefix / ".rewheel-complete"
    archive = fetch_native_source(library)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".build-{library.name}-", dir=prefix.parent) as tmp:
        work = Path(tmp)
        tree = _source_root(unpack(archive, work / "src"))
        toolchain = write_toolchain(target, work / "bin")
        log = prefix.parent / f"{prefix.name}.log"  # outside the scratch folder: kept when the build fails
        log.write_text("", encoding="utf-8")
        staging = work / "prefix"
        env = {
            **os.environ,
            **toolchain.environment(),
            "PATH": f"{toolchain.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "CFLAGS": "-O2 -fPIC",
            # Native libraries here are C. autoconf still probes a C++ compiler by linking a test program,
            # which makes zig build a whole libc++ for the target (minutes, per target); the probe links
            # fine without it.
            "CXX": f"{toolchain.cxx} -nostdlib++",
            "ZIG_GLOBAL_CACHE_DIR": str(zig_cache_dir(cache_root())),
            "ZIG_LOCAL_CACHE_DIR": str(zig_cache_dir(cache_root())),
        }
        reporter.say(
            f"native: building {library.name} {library.version} for {target} (zig cc -target {toolchain.triple})",
        )
        for command, what in _build_commands(library, target, tree, work, staging, toolchain.bin_dir):
            _run(command, tree, env, log, f"{what} of {library.name} for {target}")
        shutil.copyfile(log, staging / "rewheel-build.log")
        # pkg-config (and CMake package) files name the staging prefix; rewrite them to the final one before
        # moving it there.
        config_scripts = [f for f in (staging / "bin").glob("*-config") if f.is_file()]
        for text_file in [*staging.rglob("*.pc"), *staging.rglob("*.cmake"), *config_scripts]:
            text = text_file.read_text(encoding="utf-8", errors="surrogateescape")
            text_file.write_text(
                text.replace(str(staging), str(prefix)), encoding="utf-8", errors="surrogateescape"
            )
        for la in staging.rglob("*.la"):
            la.unlink()  # libtool archives hard-code the staging path and nothing here needs them
        if get_target(target).is_windows:
            # zig's linker looks for -lffi as ffi.lib / libffi.a, not libtool's libffi.dll.a: same file.
            for implib in staging.glob("lib/lib*.dll.a"):
                shutil.copyfile(implib, implib.with_name(implib.name[3 : -len(".dll.a")] + ".lib"))
        if prefix.exists():
            shutil.rmtree(prefix)
        os.replace(staging, prefix)
    done.write_text(f"{library.name} {library.version} {toolchain.triple}\n", encoding="utf-8")
    reporter.say(f"native: {library.name} for {target} installed in {prefix}")


def _build_host_triplet() -> str:
    machine = os.uname().machine
    return "x86_64-pc-linux-gnu" if machine == "x86_64" else f"{machine}-linux-gnu"


def _build_commands(
    library: NativeLibrary, target: str, tree: Path, work: Path, staging: Path, bin_dir: Path
) -> list[tuple[list[str], str]]:
    """The commands (and what each is, for errors) that build and install `library` into `staging`."""
    windows = get_target(target).is_windows
    shared = linkage_for(library, target) == "shared"
    if shared and not windows:
        raise RewheelError(
            f"native library {library.name}: linkage 'shared' is built for Windows targets only (Linux "
            "targets link native libraries statically)"
        )
    if shared and library.build != "autotools":
        raise RewheelError(
            f"native library {library.name}: linkage 'shared' needs build 'autotools' (got {library.build!r})"
        )
    if library.build == "autotools":
        # shared (Windows): a DLL (bin/<name>.dll + lib/<name>.dll.a), which delvewheel then bundles and
        # mangles, as upstream's Windows wheels carry their libraries; static: archives linked in (PIC on Linux).
        linkage = (
            ["--enable-shared", "--disable-static"]
            if shared
            else ["--disable-shared", "--enable-static", *([] if windows else ["--with-pic"])]
        )
        configure = [
            "./configure",
            f"--host={gnu_host(target)}",
            f"--build={_build_host_triplet()}",
            f"--prefix={staging}",
            *linkage,
            *library.configure_args,
        ]
        make = [(["make", "-j2"], "make"), (["make", "install"], "make install")]
        return [(configure, "configure"), *make]
    if library.build == "configure":
        configure = ["./configure", f"--prefix={staging}", *library.configure_args]
        make = [(["make", "-j2"], "make"), (["make", "install"], "make install")]
        return [(configure, "configure"), *make]
    if library.build == "cmake":
        build_dir = work / "cmake-build"
        empty_root = work / "no-host-root"  # find_library/find_path search only here: nothing of the host's
        empty_root.mkdir(parents=True, exist_ok=True)
        configure = [
            "cmake",
            "-S", str(tree),
            "-B", str(build_dir),
            f"-DCMAKE_SYSTEM_NAME={'Windows' if windows else 'Linux'}",
            f"-DCMAKE_SYSTEM_PROCESSOR={get_target(target).arch}",
            f"-DCMAKE_C_COMPILER={bin_dir / 'cc'}",
            f"-DCMAKE_AR={bin_dir / 'ar'}",
            f"-DCMAKE_RANLIB={bin_dir / 'ranlib'}",
            "-DCMAKE_BUILD_TYPE=Release",
            f"-DCMAKE_INSTALL_PREFIX={staging}",
            # Absolute: some projects (libjpeg-turbo) re-declare it as a PATH cache entry, which turns a
            # relative value into one under the source tree. lib, not lib64: one place for -L and pkg-config.
            f"-DCMAKE_INSTALL_LIBDIR={staging / 'lib'}",
            "-DBUILD_SHARED_LIBS=OFF",
            "-DCMAKE_POSITION_INDEPENDENT_CODE=ON",
            f"-DCMAKE_FIND_ROOT_PATH={empty_root}",
            "-DCMAKE_FIND_ROOT_PATH_MODE_PROGRAM=NEVER",
            "-DCMAKE_FIND_ROOT_PATH_MODE_LIBRARY=ONLY",
            "-DCMAKE_FIND_ROOT_PATH_MODE_INCLUDE=ONLY",
            "-DCMAKE_FIND_ROOT_PATH_MODE_PACKAGE=ONLY",
            *library.configure_args,
        ]  # fmt: skip
        return [
            (configure, "cmake configure"),
            (["cmake", "--build", str(build_dir), "--parallel", "2"], "cmake build"),
            (["cmake", "--install", str(build_dir)], "cmake install"),
        ]
    raise RewheelError(f"native library {library.name}: no commands for build {library.build!r}")


def build_native_libraries(libraries: list[NativeLibrary], target: str) -> list[NativePrefix]:
    return [build_native_library(lib, target) for lib in libraries]


def native_environment(prefixes: list[NativePrefix]) -> dict[str, str]:
    """Flags that make a package build find the target-built libraries, and only those.

    -I goes in CPPFLAGS (setuptools replaces its own flags with a CFLAGS variable). PKG_CONFIG_LIBDIR
    replaces pkg-config's default search path so the host's .pc files (host headers, host libraries) never
    reach a cross build."""
    if not prefixes:
        return {}
    include = " ".join(f"-I{p.include_dir}" for p in prefixes)
    libs = " ".join(f"-L{d}" for p in prefixes for d in p.lib_dirs)
    pkgconfig = os.pathsep.join(str(d / "pkgconfig") for p in prefixes for d in p.lib_dirs)
    return {
        "CPPFLAGS": include,
        "LDFLAGS": libs,
        "PKG_CONFIG_PATH": pkgconfig,
        "PKG_CONFIG_LIBDIR": pkgconfig,
    }
