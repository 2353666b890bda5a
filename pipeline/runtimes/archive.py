"""Built runtimes (and the shared build caches behind them) as shareable, pinned archives.

A runtime or a musl dependency folder costs minutes to hours to build and is the same for every user of one
rewheel revision, so it is built once and shared as one `.tar.xz` (stdlib tarfile) with a manifest:

- `<name>.tar.xz` holds `rewheel-archive.json` (the manifest's core) and the folder under `tree/`;
- `<name>.json` beside it is the same manifest plus the archive's own sha256 and size: the pin.

The manifest's core is what makes the archive interchangeable with a local build: the runtime's data entry
(the `[[runtime]]` table), the sha256 of every input (sources, loaders, libraries) and the recipe revisions.
An import compares it with what *this* rewheel would build for that name; any difference is refused, since
an archive of another recipe would be taken for a finished build of this one.

What is archived is the expensive build only. The musl profile layer (the loader, libz.so.1, the interpreter
copy whose PT_INTERP is an absolute path into the cache) is left out and remade on import in about a second,
so an archive works in any cache folder. Links pointing outside the folder are stored as the files they
point to (musl-gcc's kernel headers); an import unpacks through pipeline.unpack's rules (nothing outside its
folder, no link out, bounded sizes) and lands with one rename, like a build.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pipeline import __version__
from pipeline.errors import RewheelError, UnsafeArchive
from pipeline.log import log
from pipeline.paths import runtimes_root
from pipeline.util import atomic_path, sha256_file, shareable_mode

FORMAT = "rewheel-archive/1"
INNER_MANIFEST = "rewheel-archive.json"
SUFFIX = ".tar.xz"
# xz's preset 1: a 83 MB runtime packs in well under a minute on a loaded 2-core machine; higher presets
# save a few MB for several times the CPU.
XZ_PRESET: Literal[1] = 1
# Files a build leaves that nobody reads after it (the build log) or that an import remakes (the profile).
NOT_ARCHIVED = ("build.log", "rewheel-musl-profile.json", "tmp")
ZIG_CACHE = "zig-cache"
NATIVE_LIBRARIES = "native-libraries"
RUST_STD = "rust-std"
# Text files a relocation looks into: small, and without NUL bytes (never a static archive or an object).
RELOCATE_MAX_BYTES = 1 << 20


class ArchiveMismatch(RewheelError):
    """An archive that is not what this rewheel would build for that name (another recipe, other inputs)."""


@dataclass
class Artefact:
    """One shareable folder: a runtime's build or a shared build cache (musl deps, musl zlib)."""

    name: str
    kind: str  # "runtime" | "cache"
    folder: Path
    entry: dict[str, Any]
    inputs: dict[str, str]
    revision: dict[str, int]
    ready: Callable[[], bool] = field(repr=False)  # True when the folder holds a finished build
    # Text files in it name its own absolute path (pkg-config, CMake and libtool files): rewritten on import.
    relocate: bool = False

    def core(self) -> dict[str, Any]:
        """What must be equal between an archive and this rewheel for the archive to stand for a build."""
        return {
            "name": self.name,
            "kind": self.kind,
            "entry": self.entry,
            "inputs": self.inputs,
            "revision": self.revision,
        }


def _sha256s(value: Any, found: dict[str, str]) -> dict[str, str]:
    """Every pinned file in a data table: {filename (or key path): sha256}."""
    if isinstance(value, dict):
        if isinstance(value.get("sha256"), str):
            found[str(value.get("filename") or value.get("url") or len(found))] = value["sha256"]
        for item in value.values():
            _sha256s(item, found)
    elif isinstance(value, list):
        for item in value:
            _sha256s(item, found)
    return found


def _runtime_entry(name: str) -> tuple[str, dict[str, Any]] | None:
    from pipeline.runtimes import runtime_entries

    for kind, entries in runtime_entries().items():
        for entry in entries:
            if entry.get("name") == name:
                return kind, entry
    return None


def artefact(name: str) -> Artefact:
    """The shareable artefact called `name`: a runtime of the registry, or `musl-deps-<arch>` /
    `musl-zlib-<arch>` (the shared musl builds every musl CPython of that architecture uses), `zig-cache`
    (zig's libc and compiler-rt per target, which the first zig build of each target spends minutes on),
    `native-libraries` (the zig backend's built C libraries) or `rust-std` (the Rust std sysroots the zig
    backend builds with -Zbuild-std, minutes per target)."""
    from pipeline.runtimes import musl_cpython

    for prefix, cache_revision in (
        ("musl-deps-", musl_cpython.DEPS_REVISION),
        ("musl-zlib-", musl_cpython.ZLIB_REVISION),
    ):
        if name.startswith(prefix):
            arch = name.removeprefix(prefix)
            if arch not in musl_cpython._data().get("loaders", {}):
                raise RewheelError(f"{name}: no musl architecture {arch!r}")
            libraries = musl_cpython._data()["libraries"]
            entry = {lib: libraries[lib] for lib in (("zlib",) if prefix == "musl-zlib-" else libraries)}
            folder_owner: musl_cpython.MuslDependencies | musl_cpython.MuslZlib = (
                musl_cpython.MuslDependencies(arch) if prefix == "musl-deps-" else musl_cpython.MuslZlib(arch)
            )
            return Artefact(
                name=name,
                kind="cache",
                folder=folder_owner.root(),
                entry={"arch": arch, "libraries": entry},
                inputs=_sha256s(entry, {}),
                revision={prefix.strip("-").replace("-", "_"): cache_revision},
                ready=folder_owner.exists,
            )
    if name == ZIG_CACHE:
        from pipeline.paths import cache_root, zig_cache_dir

        folder = zig_cache_dir(cache_root())
        return Artefact(
            name=name,
            kind="cache",
            folder=folder,
            # zig keys every entry of its cache by its own version and inputs (a stale entry is a miss, never
            # a wrong hit), so the folder needs no recipe of rewheel's to match.
            entry={"what": "zig's global cache: libc and compiler-rt per target, compiled objects"},
            inputs={},
            revision={"zig_cache": 1},
            ready=lambda: folder.is_dir() and any(folder.glob("o/*")),
        )
    if name == NATIVE_LIBRARIES:
        from pipeline.paths import cache_root

        native = cache_root() / "native"
        return Artefact(
            name=name,
            kind="cache",
            folder=native,
            # Each library's folder is named by a digest of its recipe, source and target, and is used only
            # when its .rewheel-complete marker is there, so the folder as a whole needs no recipe to match.
            entry={
                "what": "the zig backend's native libraries: <triple>/<library>-<version>-<linkage>-<digest>"
            },
            inputs={},
            revision={"native_libraries": 1},
            ready=lambda: native.is_dir() and any(native.iterdir()),
            relocate=True,
        )
    if name == RUST_STD:
        from pipeline.paths import cache_root

        std = cache_root() / "rust" / "std"
        return Artefact(
            name=name,
            kind="cache",
            folder=std,
            # Each sysroot's folder is named by the target, the compiler's version and a digest of the
            # compiler's `rustc -vV`, std's flags and crates, and is used only when its .rewheel-complete
            # marker is there: another compiler's sysroot is a miss, never a wrong hit.
            entry={"what": "the zig backend's Rust std sysroots: <triple>-<rustc version>-<digest>"},
            inputs={},
            revision={"rust_std": 1},
            ready=lambda: std.is_dir() and any(std.glob("*/.rewheel-complete")),
        )
    described = _runtime_entry(name)
    if described is None:
        from pipeline.runtimes import get_runtime

        get_runtime(name)  # an unknown name: its own one-line error listing the known ones
        raise RewheelError(f"{name}: described in code, not data; only data-described runtimes are archived")
    kind, entry = described
    from pipeline.runtimes import get_runtime

    runtime = get_runtime(name)
    revision = {"runtime": int(getattr(runtime, "revision", 1))}
    inputs = _sha256s(entry, {})
    ready: Callable[[], bool] = runtime.exists
    if isinstance(runtime, musl_cpython.MuslCPython):
        if runtime.entry.base:
            raise RewheelError(
                f"{name} is a profile over {runtime.entry.base}'s build (made from it in about a second): "
                f"export {runtime.entry.base}"
            )
        # The build links the per-architecture libraries: they are inputs as much as the CPython source.
        inputs.update(_sha256s(musl_cpython._data()["libraries"], {}))
        revision["musl_deps"] = musl_cpython.DEPS_REVISION
        ready = runtime.build_exists
    return Artefact(
        name=name,
        kind="runtime",
        folder=runtime.root(),
        entry={"data": kind, **entry},
        inputs=dict(sorted(inputs.items())),
        revision=revision,
        ready=ready,
    )


# -- export --------------------------------------------------------------------------------------------


def _add_tree(tar: tarfile.TarFile, folder: Path) -> tuple[int, int]:
    """Add folder's contents under tree/; links inside stay links (made relative), links out become the files
    they point to. Returns (members, bytes)."""
    members = size = 0
    real_root = folder.resolve()
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        here = Path(dirpath)
        relative_dir = here.relative_to(folder)
        for name in sorted(filenames) + [d for d in dirnames if (here / d).is_symlink()]:
            path = here / name
            if relative_dir == Path(".") and name in NOT_ARCHIVED:
                continue
            arcname = f"tree/{(relative_dir / name).as_posix()}"
            if path.is_symlink():
                target = Path(os.path.realpath(path))
                if not target.exists():
                    continue  # a dangling link is of no use to anyone
                if target == real_root or real_root in target.parents:
                    info = tarfile.TarInfo(arcname)
                    info.type = tarfile.SYMTYPE
                    info.linkname = os.path.relpath(target, path.parent.resolve())
                    info.mode = 0o777
                    tar.addfile(info)
                    members += 1
                    continue
                tar.add(target, arcname, recursive=True)  # a link out: store what it points to
                members += 1
                continue
            try:
                info = tar.gettarinfo(path, arcname)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            except FileNotFoundError:
                continue  # a shared cache (zig's) that another process is pruning: its entry is gone
            members += 1
            size += info.size
        # os.walk does not descend into links to folders (handled above), nor into a native library's
        # build in progress (`.build-<name>-*`: another process's, not a finished build).
        dirnames[:] = [d for d in dirnames if not (here / d).is_symlink() and not d.startswith(".build-")]
    return members, size


def export(name: str, out: Path) -> dict[str, Any]:
    """Write <out>/<name>.tar.xz and <out>/<name>.json; returns the manifest."""
    item = artefact(name)
    if not item.ready():
        raise RewheelError(
            f"{name} is not built here ({item.folder}); build it first (`rewheel runtimes build`)"
        )
    out.mkdir(parents=True, exist_ok=True)
    archive = out / f"{name}{SUFFIX}"
    started = time.monotonic()
    log.say(f"runtimes: exporting {name} from {item.folder}")
    core = {"format": FORMAT, **item.core(), "rewheel_version": __version__, "origin": str(item.folder)}
    with (
        atomic_path(archive, mode=shareable_mode()) as staged,
        tarfile.open(staged, "w:xz", preset=XZ_PRESET, format=tarfile.PAX_FORMAT) as tar,
    ):
        data = json.dumps(core, indent=2, sort_keys=True).encode()
        info = tarfile.TarInfo(INNER_MANIFEST)
        info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
        tar.addfile(info, io.BytesIO(data))
        members, unpacked = _add_tree(tar, item.folder)
    manifest = {
        **core,
        "members": members,
        "unpacked_bytes": unpacked,
        "archive": archive.name,
        "size": archive.stat().st_size,
        "sha256": sha256_file(archive),
    }
    (out / f"{name}.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    log.say(f"runtimes: {archive} ({manifest['size'] >> 20} MiB) in {time.monotonic() - started:.0f} s")
    return manifest


# -- import --------------------------------------------------------------------------------------------


def _differences(found: dict[str, Any], wanted: dict[str, Any]) -> str:
    parts = []
    for key in ("name", "kind", "revision", "inputs", "entry"):
        if found.get(key) != wanted.get(key):
            if key in ("name", "kind", "revision"):
                parts.append(f"{key} {found.get(key)!r}, this rewheel's {wanted.get(key)!r}")
            elif key == "inputs":
                theirs, ours = found.get(key) or {}, wanted.get(key) or {}
                changed = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
                parts.append(f"inputs differ ({', '.join(changed[:3])})")
            else:
                parts.append("its data entry differs")
    return "; ".join(parts)


def read_inner_manifest(archive: Path) -> dict[str, Any]:
    try:
        with tarfile.open(archive) as tar:
            first = tar.next()
            if first is None or first.name != INNER_MANIFEST or not first.isreg() or first.size > 1 << 20:
                raise UnsafeArchive(
                    f"{archive.name}: not a rewheel runtime archive (no {INNER_MANIFEST} first)"
                )
            stream = tar.extractfile(first)
            assert stream is not None
            data = json.loads(stream.read())
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        raise UnsafeArchive(f"{archive.name}: not a readable runtime archive: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UnsafeArchive(f"{archive.name}: not a {FORMAT} archive")
    return data


def check(archive: Path, *, sha256: str | None, manifest: dict[str, Any] | None = None) -> Artefact:
    """Check an archive against its pin and this rewheel's recipe; returns what it stands for."""
    if not sha256:
        raise RewheelError(f"{archive.name}: no pin (no manifest beside it and no --sha256); refusing it")
    actual = sha256_file(archive)
    if actual != sha256.lower():
        raise ArchiveMismatch(f"{archive.name}: sha256 {actual} is not its pin {sha256.lower()}; refusing it")
    inner = read_inner_manifest(archive)
    if manifest is not None:
        differs = _differences(inner, manifest)
        if differs:
            raise ArchiveMismatch(
                f"{archive.name}: its inner manifest disagrees with its manifest: {differs}"
            )
    name = inner.get("name")
    if not isinstance(name, str):
        raise ArchiveMismatch(f"{archive.name}: its manifest names no runtime")
    wanted = artefact(name)
    differs = _differences(inner, wanted.core())
    if differs:
        raise ArchiveMismatch(f"{archive.name} is not this rewheel's {name}: {differs}")
    return wanted


def import_archive(archive: Path, *, sha256: str | None, manifest: dict[str, Any] | None = None) -> Artefact:
    """Check, then unpack into the cache with one rename (under the artefact's build lock). A folder already
    holding a finished build is kept."""
    from pipeline.runtimes._support import build_lock, fresh_dir, publish_dir
    from pipeline.unpack import unpack

    item = check(archive, sha256=sha256, manifest=manifest)
    with build_lock(item.name):
        if item.ready():
            return item
        work = runtimes_root() / ".work"
        staging = fresh_dir(work / f"import-{item.name}")
        shutil.rmtree(staging)
        try:
            unpack(archive, staging)
            tree = staging / "tree"
            if not tree.is_dir():
                raise UnsafeArchive(f"{archive.name}: holds no tree/ folder")
            origin = read_inner_manifest(archive).get("origin")
            if item.relocate and isinstance(origin, str) and origin and origin != str(item.folder):
                _relocate(tree, origin, str(item.folder))
            publish_dir(tree, item.folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if not item.ready():
            shutil.rmtree(item.folder, ignore_errors=True)
            raise ArchiveMismatch(
                f"{archive.name}: unpacked, but {item.name} is not a finished build; removed"
            )
    return item


def _relocate(tree: Path, old: str, new: str) -> None:
    """Rewrite the exporting cache's path to this cache's in the tree's text files (as conda relocates a
    prefix): a pkg-config file's `prefix=` must name where the library now is."""
    before, after = old.encode(), new.encode()
    for dirpath, _dirs, files in os.walk(tree):
        for name in files:
            path = Path(dirpath) / name
            if path.is_symlink() or path.stat().st_size > RELOCATE_MAX_BYTES:
                continue
            data = path.read_bytes()
            if before in data and b"\0" not in data:
                path.write_bytes(data.replace(before, after))
