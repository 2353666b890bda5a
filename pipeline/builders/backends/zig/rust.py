"""Rust extensions (maturin, setuptools-rust) in the zig backend: compiler, the target's std, crates.

What a cross build of a Rust extension needs, and where rewheel gets each part without rustup or a container:

- **A compiler and the target's std.** The user's rustc on PATH is used as it is when its sysroot holds the
  target's std (rustup with the target added: the normal case on a developer machine). Otherwise rewheel uses
  the compiler + std-source pair it installs itself (toolset `rust`: bookworm-security's rustc-web, cargo-web
  and rust-web-src of one release) and builds the std for the target once with cargo's `-Zbuild-std`
  (RUSTC_BOOTSTRAP=1), into a sysroot cached per (target, compiler, flags). Building std into a separate
  sysroot, rather than inside every package's build, is what makes it once per target; it also keeps std's own
  crates (library/vendor) out of the package's crate resolution, which a package's own .cargo/config.toml
  (orjson's replaces crates-io with its vendored folder) would otherwise break. A PATH toolchain paired with a
  std source of another release is refused with one line naming both versions.
- **Linking.** maturin's `--zig` (cargo-zigbuild inside maturin) links with zig for the target's libc (musl, or
  glibc 2.17 for manylinux_2_17). `-C link-self-contained=no`: the built sysroot has no self-contained crt
  objects (rustup ships them), and zig supplies crt1.o.
- **Crates.** Resolved before the build step, on the host, so the build itself never needs the network (it runs
  in a sandbox without it): the sdist's vendored crates (a .cargo/config.toml replacing crates-io with a
  directory inside the source), else `cargo fetch` from the public registry where reachable. When neither works
  the build stops with one line naming what is missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pipeline import toml
from pipeline.builders.backends.zig.toolchain import cache_lock
from pipeline.errors import MissingTool, RewheelError
from pipeline.log import log
from pipeline.paths import cache_root
from pipeline.recipe import CrateSource
from pipeline.runtimes.sources import prime_shared_cache
from pipeline.source_inspect import _NOT_BUILT, SourceListing
from pipeline.util import error_line

# The architectures the zig backend builds Rust for (std built and imported on their runtimes here); the Rust
# triple and maturin's --compatibility are derived from a target's arch, libc and policy (pipeline/targets).
RUST_ARCHES = ("x86_64", "aarch64")
RUST_TARGETS_SAID = "musllinux and manylinux_2_17+ targets of x86_64 and aarch64"
# The compiler + std source pair rewheel installs (system-packages.toml, toolset `rust`).
PROJECT_TOOLSET = "rust"
PROJECT_RUSTC = Path("/usr/bin/rustc")
PROJECT_CARGO = Path("/usr/bin/cargo")
# Flags std is built with; part of the cache key. force-unstable-if-unmarked: std's dependencies (libc,
# hashbrown) stay unstable, so a package's own `libc` crate never collides with them (as in rustup's std).
# embed-bitcode: packages with lto = "fat" (orjson) need bitcode in every rlib, std's included.
STD_RUSTFLAGS = ["-Zforce-unstable-if-unmarked", "-Cembed-bitcode=yes"]
STD_CRATES = "std,panic_abort,panic_unwind"
# Added for every musl package build against a built sysroot.
TARGET_RUSTFLAGS = ["-C", "link-self-contained=no"]
_STD_LAYOUT = 1  # bump when the sysroot's layout or build changes


def is_rust_source(listing: SourceListing) -> bool:
    """A maturin or setuptools-rust project (what pipeline.source_inspect calls "needs a Rust toolchain")."""
    from pipeline.source_inspect import needs_rust

    return needs_rust(listing)


def builds_rust(target: str) -> bool:
    """The zig backend builds Rust for this target: Linux, x86_64 or aarch64, musl or glibc >= 2.17 (what zig
    links against and std supports)."""
    from pipeline.targets import get_target

    spec = get_target(target)
    own = spec.policy_platform
    if own is None or spec.arch not in RUST_ARCHES:
        return False
    return spec.is_musl or own.level >= (2, 17)


def rust_triple(target: str) -> str:
    """x86_64-unknown-linux-musl, aarch64-unknown-linux-gnu, ...: from the target's arch and libc."""
    from pipeline.targets import get_target

    if not builds_rust(target):
        raise RewheelError(f"the zig backend builds Rust extensions for {RUST_TARGETS_SAID}, not {target}")
    spec = get_target(target)
    return f"{spec.arch}-unknown-linux-{'musl' if spec.is_musl else 'gnu'}"


def _compatibility(target: str) -> str:
    """maturin's --compatibility: the policy the zig link targets (musllinux_1_2, manylinux_2_17, ...)."""
    from pipeline.targets import get_target

    policy = get_target(target).policy
    assert policy is not None
    return policy


@dataclass(frozen=True)
class RustToolchain:
    rustc: Path
    cargo: Path
    version: str  # "1.96.0"
    verbose: str  # `rustc -vV`: the commit and LLVM version, part of the std cache key
    sysroot: Path
    origin: str  # "PATH" or "toolset rust"

    @property
    def std_source(self) -> Path:
        """Where cargo's -Zbuild-std reads the std source: <sysroot>/lib/rustlib/src/rust."""
        return self.sysroot / "lib" / "rustlib" / "src" / "rust"

    def has_std(self, triple: str) -> bool:
        folder = self.sysroot / "lib" / "rustlib" / triple / "lib"
        return folder.is_dir() and any(folder.glob("libstd-*.rlib"))


def _toolchain(rustc: Path, cargo: Path, origin: str) -> RustToolchain | None:
    try:
        verbose = subprocess.run([str(rustc), "-vV"], capture_output=True, text=True, check=True).stdout
        sysroot = subprocess.run(
            [str(rustc), "--print", "sysroot"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    found = re.search(r"^release:\s*(\S+)", verbose, re.M)
    if not found:
        return None
    return RustToolchain(rustc, cargo, found.group(1), verbose, Path(sysroot), origin)


def std_source_version(source: Path) -> str | None:
    """The release a Rust source tree is of (its src/version file, else RELEASES.md's first heading)."""
    version_file = source / "src" / "version"
    if version_file.is_file():
        return version_file.read_text(encoding="utf-8").strip()
    releases = source / "RELEASES.md"
    if releases.is_file():
        with releases.open(encoding="utf-8") as stream:
            found = re.match(r"Version (\S+)", stream.readline())
        return found.group(1) if found else None
    return None


def check_pair(toolchain: RustToolchain, source: Path) -> None:
    """std must be built from the source of the compiler's own release (std uses unstable internals that
    change every release): one line naming both versions when they differ."""
    version = std_source_version(source)
    if version != toolchain.version:
        raise RewheelError(
            f"rustc {toolchain.version} ({toolchain.rustc}) does not match the Rust std source "
            f"{version or 'of unknown version'} ({source}); building std needs both of one release "
            f"(install rust-src {toolchain.version}, or remove this rustc from PATH so rewheel uses its own "
            f"toolset {PROJECT_TOOLSET!r})"
        )


def _path_toolchain() -> RustToolchain | None:
    rustc, cargo = shutil.which("rustc"), shutil.which("cargo")
    if not rustc or not cargo:
        return None
    return _toolchain(Path(rustc), Path(cargo), "PATH")


def find_toolchain(triple: str) -> tuple[RustToolchain, bool]:
    """The compiler to build for `triple`, and whether its std must be built (True) or is installed.

    PATH's rustc with the target installed wins; a PATH rustc with its own rust-src builds std from it (after
    the version check); otherwise rewheel's own toolset."""
    on_path = _path_toolchain()
    if on_path is not None:
        if on_path.has_std(triple):
            return on_path, False
        if (on_path.std_source / "library" / "std").is_dir():
            check_pair(on_path, on_path.std_source)
            return on_path, True
    from pipeline.system_packages import ensure_toolset

    ensure_toolset(PROJECT_TOOLSET)
    own = _toolchain(PROJECT_RUSTC, PROJECT_CARGO, f"toolset {PROJECT_TOOLSET}")
    if own is None:
        raise MissingTool(f"toolset {PROJECT_TOOLSET!r} is installed but {PROJECT_RUSTC} does not run")
    if own.has_std(triple):
        return own, False
    check_pair(own, own.std_source)
    return own, True


def _resource(*parts: str) -> Path:
    return Path(str(resources.files("pipeline"))).joinpath("resources", "rust", *parts)


def std_key(toolchain: RustToolchain, triple: str) -> str:
    wrapper = _resource("rustc-sysroot-wrapper.sh").read_bytes()
    material = json.dumps(
        [_STD_LAYOUT, toolchain.verbose, triple, STD_RUSTFLAGS, STD_CRATES, wrapper.hex()], sort_keys=True
    )
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def rust_fingerprint(triple: str) -> str:
    """The compiler a build for `triple` uses and where its std comes from, for the build record."""
    toolchain, build_std = find_toolchain(triple)
    std = f"built {std_key(toolchain, triple)}" if build_std else "installed"
    return f"rustc {toolchain.version} ({toolchain.origin}), std {std}"


# Where built std sysroots are kept instead of <cache>/rust/std: an empty folder here makes the next build pay
# for its std again (the zig-vs-QEMU benchmark times a cold std build this way, other caches left warm).
STD_DIR_VARIABLE = "REWHEEL_RUST_STD_DIR"


def std_root(toolchain: RustToolchain, triple: str) -> Path:
    configured = os.environ.get(STD_DIR_VARIABLE)
    base = Path(configured).expanduser().resolve() if configured else cache_root() / "rust" / "std"
    return base / f"{triple}-{toolchain.version}-{std_key(toolchain, triple)}"


def ensure_std(toolchain: RustToolchain, triple: str) -> Path:
    """A sysroot with the std for `triple` built from the toolchain's own source; built once, then cached."""
    root = std_root(toolchain, triple)
    sysroot = root / "sysroot"
    marker = root / ".rewheel-complete"
    if marker.is_file():
        return sysroot
    prime_shared_cache("rust-std")  # every sysroot built elsewhere, from the runtime source if one is set
    if marker.is_file():
        return sysroot
    with cache_lock(root):
        if marker.is_file():
            return sysroot
        _build_std(toolchain, triple, root)
        marker.write_text(toolchain.verbose, encoding="utf-8")
    return sysroot


def _build_std(toolchain: RustToolchain, triple: str, root: Path) -> None:
    import time

    started = time.monotonic()
    log.say(f"zig: building the Rust std {toolchain.version} for {triple} (once; cached in {root})")
    shutil.rmtree(root, ignore_errors=True)
    crate = root / "crate"
    shutil.copytree(_resource("sysroot-crate"), crate)
    wrapper = root / "rustc-wrapper.sh"
    shutil.copyfile(_resource("rustc-sysroot-wrapper.sh"), wrapper)
    wrapper.chmod(0o755)
    cargo_home = root / "cargo-home"
    cargo_home.mkdir(parents=True)
    # std's own dependencies (libc, hashbrown, ...) come from the source's vendor folder: offline.
    vendor = toolchain.std_source / "library" / "vendor"
    (cargo_home / "config.toml").write_text(
        '[source.crates-io]\nreplace-with = "rust-std-vendor"\n\n'
        f"[source.rust-std-vendor]\ndirectory = {json.dumps(str(vendor))}\n",
        encoding="utf-8",
    )
    env = {
        **_clean_environment(),
        "CARGO_HOME": str(cargo_home),
        "CARGO_TARGET_DIR": str(root / "target"),
        "RUSTC": str(toolchain.rustc),
        "RUSTC_WRAPPER": str(wrapper),
        "RUSTC_BOOTSTRAP": "1",
        "RUSTFLAGS": " ".join(STD_RUSTFLAGS),
    }
    command = [
        str(toolchain.cargo),
        "build",
        "--release",
        "--offline",
        "--target",
        triple,
        f"-Zbuild-std={STD_CRATES}",
    ]
    result = log.run(command, cwd=crate, env=env, label=f"building Rust std for {triple}")
    (root / "build.log").write_text(result.stdout + result.stderr, encoding="utf-8")
    if result.returncode != 0:
        lines = [ln for ln in (result.stdout + result.stderr).splitlines() if ln.startswith("error")]
        raise RewheelError(
            f"building the Rust std for {triple} with rustc {toolchain.version} failed: "
            f"{(lines or ['cargo failed'])[0]} (log: {root / 'build.log'})"
        )
    lib = root / "sysroot" / "lib" / "rustlib" / triple / "lib"
    lib.mkdir(parents=True)
    for rlib in (root / "target" / triple / "release" / "deps").glob("*.rlib"):
        if not rlib.name.startswith("librewheel_sysroot"):
            shutil.copyfile(rlib, lib / rlib.name)
    shutil.rmtree(root / "target", ignore_errors=True)  # hundreds of MB of intermediate files
    log.say(f"zig: Rust std for {triple} built in {time.monotonic() - started:.0f} s")


def _clean_environment() -> dict[str, str]:
    """The host environment without cross-compile variables (std and build scripts are not Python builds)."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("_PYTHON_", "CARGO_", "RUSTC", "RUSTFLAGS", "MATURIN_"))
        or k == "CARGO_NET_OFFLINE"  # the user's "never fetch crates" is kept
    }


# ------------------------------------------------------------------------------------------------- crates
def vendored_directory(tree: Path) -> Path | None:
    """The folder a source's own cargo config replaces crates-io with, when that folder is inside the source
    (orjson's include/cargo); None when the source does not vendor its crates."""
    for name in ("config.toml", "config"):
        config = tree / ".cargo" / name
        if not config.is_file():
            continue
        try:
            data = toml.loads(config.read_text(encoding="utf-8"))
        except toml.TOMLDecodeError:
            continue
        sources = data.get("source", {})
        replacement = sources.get("crates-io", {}).get("replace-with")
        directory = sources.get(replacement, {}).get("directory") if replacement else None
        if isinstance(directory, str):
            # cargo resolves a config's relative paths against the folder holding `.cargo/`.
            folder = (tree / directory).resolve()
            if folder.is_dir() and folder.is_relative_to(tree.resolve()):
                return folder
    return None


def vendored_in_listing(listing: SourceListing) -> str | None:
    """The folder (relative to the source) a source's .cargo/config.toml vendors its crates in, when the
    source ships it; read from an sdist's listing without unpacking it (`recipe new`)."""
    try:
        data = toml.loads(listing.config.get(".cargo/config.toml") or "")
    except toml.TOMLDecodeError:
        return None
    sources = data.get("source", {})
    replacement = sources.get("crates-io", {}).get("replace-with")
    directory = sources.get(replacement, {}).get("directory") if replacement else None
    if not isinstance(directory, str):
        return None
    folder = directory.strip("/").removeprefix("./")
    return folder if any(n.startswith(folder + "/") for n in listing.names) else None


def crates_finding(listing: SourceListing) -> str:
    """Where a Rust source's crates will come from, in words for `recipe new`."""
    vendored = vendored_in_listing(listing)
    if vendored:
        return f"crates vendored in the sdist ({vendored}/): builds offline"
    return (
        "crates not vendored in the sdist: the build fetches them with `cargo fetch` (Cargo.lock) before "
        "building, so it builds only where the crates registry is reachable; elsewhere pin them in the "
        "recipe's [[crates]] (Debian librust-*-dev .debs or a `cargo vendor` tarball, by sha256)"
    )


def fetch_crate_file(crate: CrateSource) -> Path:
    """The pinned .deb or vendor tarball, from the downloads cache or fetched and checked against its sha256.
    A deb comes through apt (`apt-get download PACKAGE=VERSION`; another suite through rewheel's private
    lists for it, as the runtimes' Debian packages do)."""
    from pipeline.fetch import Pin, fetch

    if crate.kind == "vendor-tarball":
        return fetch(Pin(filename=crate.filename, sha256=crate.sha256, url=crate.url))
    from pipeline.runtimes._support import DebianFile, debian_binaries

    assert crate.package and crate.version  # the recipe model requires both for a deb
    item = DebianFile(crate.package, crate.filename, crate.sha256, crate.version, crate.suite)
    (path,) = debian_binaries([item])
    return path


def crate_directory(crates: list[CrateSource]) -> Path:
    """One cargo directory source holding the recipe's pinned crates, cached by their sha256s.

    Debian's `.cargo-checksum.json` files are placeholders (no file list, package null), and a `cargo vendor`
    tarball's are real: each crate's file is rewritten with the sha256 of every file it ships, so cargo checks
    the files against what was unpacked from the pinned archive. `package` stays null (Debian has no .crate
    file to hash), so a Cargo.lock with registry checksums must be dropped or patched by the recipe."""
    key = hashlib.sha256("\n".join(sorted(c.sha256 for c in crates)).encode()).hexdigest()[:16]
    root = cache_root() / "rust" / "crates" / key
    marker = root / ".rewheel-complete"
    if marker.is_file():
        return root / "vendor"
    with cache_lock(root):
        if marker.is_file():
            return root / "vendor"
        shutil.rmtree(root, ignore_errors=True)
        vendor = root / "vendor"
        vendor.mkdir(parents=True)
        for crate in crates:
            archive = fetch_crate_file(crate)
            unpacked = root / "unpacked" / crate.sha256[:16]
            unpacked.mkdir(parents=True)
            if crate.kind == "deb":
                subprocess.run(
                    ["dpkg-deb", "-x", str(archive), str(unpacked)], check=True, capture_output=True
                )
                folders = (unpacked / "usr" / "share" / "cargo" / "registry").glob("*/Cargo.toml")
            else:
                from pipeline.unpack import unpack

                unpack(archive, unpacked)
                folders = unpacked.glob("**/Cargo.toml")
            found = False
            for manifest in folders:
                folder = manifest.parent
                if (folder / ".cargo-checksum.json").is_file() or crate.kind == "deb":
                    if (vendor / folder.name).exists():
                        continue
                    shutil.copytree(folder, vendor / folder.name, symlinks=False)
                    found = True
            if not found:
                raise RewheelError(f"crates {crate.filename}: no crate inside the archive")
        for folder in vendor.iterdir():
            _write_checksums(folder)
        shutil.rmtree(root / "unpacked", ignore_errors=True)
        marker.write_text("\n".join(c.filename for c in crates) + "\n", encoding="utf-8")
    return root / "vendor"


def _write_checksums(folder: Path) -> None:
    from pipeline.util import sha256_file

    files = {
        path.relative_to(folder).as_posix(): sha256_file(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != ".cargo-checksum.json"
    }
    (folder / ".cargo-checksum.json").write_text(
        json.dumps({"files": files, "package": None}), encoding="utf-8"
    )


def use_crate_directory(tree: Path, directory: Path) -> None:
    """Point cargo at `directory` instead of the crates registry, in the source's own .cargo/config.toml:
    a crate's config file overrides the cargo home's (and the environment's) settings, so that file is the
    one that must say it. The tree is rewheel's prepared copy; anything else in the file is kept."""
    import tomlkit

    config = tree / ".cargo" / "config.toml"
    config.parent.mkdir(exist_ok=True)
    document = tomlkit.parse(config.read_text(encoding="utf-8")) if config.is_file() else tomlkit.document()
    sources = document.setdefault("source", tomlkit.table())
    sources["crates-io"] = {"replace-with": "rewheel-crates"}
    sources["rewheel-crates"] = {"directory": str(directory)}
    config.write_text(tomlkit.dumps(document), encoding="utf-8")


def prepare_crates(
    tree: Path,
    toolchain: RustToolchain,
    cargo_home: Path,
    *,
    crates: list[CrateSource] | None = None,
) -> str:
    """Make every crate the source needs available offline, before the build step. Returns how."""
    if crates:
        directory = crate_directory(crates)
        use_crate_directory(tree, directory)
        dropped = ""
        if any(c.kind == "deb" for c in crates):
            # Debian's crate versions are not the lock's, and no Debian crate carries the registry checksum the
            # lock lists: cargo resolves afresh against the pinned crates (Debian drops the lock the same way).
            for lock in tree.rglob("Cargo.lock"):
                lock.unlink()
                dropped = "; Cargo.lock dropped"
        return f"crates from the recipe's {len(crates)} pinned crate archive(s) ({directory}){dropped}"
    vendored = vendored_directory(tree)
    if vendored is not None:
        return f"crates vendored in the sdist ({vendored.relative_to(tree.resolve())})"
    # setuptools-rust projects keep their crate in a subfolder (bcrypt: src/_bcrypt/Cargo.lock).
    locks = sorted(
        lock for lock in tree.rglob("Cargo.lock") if not _NOT_BUILT.search(lock.relative_to(tree).as_posix())
    )
    if not locks:
        raise RewheelError(
            "the source has no Cargo.lock and vendors no crates: its crate versions are not pinned"
        )
    env = {**_clean_environment(), "CARGO_HOME": str(cargo_home), "RUSTC": str(toolchain.rustc)}
    for lock in locks:
        log.say(f"zig: fetching crates with cargo fetch ({lock.relative_to(tree)})")
        fetched = subprocess.run(
            [str(toolchain.cargo), "fetch", "--locked"],
            cwd=lock.parent,
            env=env,
            capture_output=True,
            text=True,
        )
        if fetched.returncode != 0:
            reason = error_line(fetched.stderr, default="cargo fetch failed")
            raise RewheelError(
                f"the sdist vendors no crates and cargo could not fetch those of {lock.relative_to(tree)} from "
                f"the crates registry ({reason}); build where the registry is reachable, or pin the crates in "
                "the recipe's [[crates]] (Debian librust-*-dev .debs or a `cargo vendor` tarball, by sha256)"
            )
    return "crates fetched by cargo from the crates registry (Cargo.lock)"


# ----------------------------------------------------------------------------------------- environment
def _target_variable(prefix: str, triple: str, suffix: str = "") -> str:
    return f"{prefix}{triple.upper().replace('-', '_')}{suffix}"


def _host_compiler_environment(toolchain: RustToolchain, triple: str) -> dict[str, str]:
    """Build scripts and proc macros run on the host: they link (and their C compiles) with the host's own
    compiler. The build PATH's `cc` is zig for the target, which refuses host library folders."""
    found = re.search(r"^host:\s*(\S+)", toolchain.verbose, re.M)
    host = found.group(1) if found else ""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not host or host == triple or cc is None:
        return {}  # a native build: one linker for both (maturin's zig wrapper)
    return {
        _target_variable("CARGO_TARGET_", host, "_LINKER"): cc,
        f"CC_{host.replace('-', '_')}": cc,  # the cc crate's per-target spelling
        "HOST_CC": cc,
    }


@dataclass
class RustBuild:
    environment: dict[str, str]
    tool_versions: dict[str, str]
    notes: list[str]


def prepare_rust_build(
    target: str,
    python: str,
    tree: Path,
    work: Path,
    *,
    linker: Path | None = None,
    crates: list[CrateSource] | None = None,
) -> RustBuild:
    """Compiler, std and crates for one job; the environment the PEP 517 build runs maturin/cargo with."""
    triple = rust_triple(target)
    toolchain, build_std = find_toolchain(triple)
    # Crates first: a source whose crates cannot be had says so before a std build of minutes.
    cargo_home = cache_root() / "rust" / "cargo-home"
    cargo_home.mkdir(parents=True, exist_ok=True)
    crates_note = prepare_crates(tree, toolchain, cargo_home, crates=crates)
    rustflags: list[str] = []
    if build_std:
        sysroot = ensure_std(toolchain, triple)
        # musl targets only: rustc rejects the option for glibc targets, which never link self-contained.
        rustflags = [f"--sysroot={sysroot}", *(TARGET_RUSTFLAGS if triple.endswith("-musl") else [])]
        notes = [
            f"Rust std for {triple} built from the rustc {toolchain.version} source ({toolchain.origin})"
        ]
    else:
        notes = [f"Rust std for {triple} from {toolchain.sysroot} ({toolchain.origin})"]
    notes.append(crates_note)
    # `cargo` and `rustc` of the chosen toolchain come first on PATH: maturin and setuptools-rust call them by
    # name, and a rustup proxy on PATH would pick its own toolchain.
    bin_dir = work / "rust-bin"
    shutil.rmtree(bin_dir, ignore_errors=True)
    bin_dir.mkdir(parents=True)
    for tool in (toolchain.rustc, toolchain.cargo):
        (bin_dir / tool.name).symlink_to(tool)
    env = {
        "REWHEEL_RUST_BIN": str(bin_dir),
        "CARGO_HOME": str(cargo_home),
        "CARGO_TARGET_DIR": str(work / "cargo-target"),
        "CARGO_NET_OFFLINE": "true",
        "RUSTC": str(toolchain.rustc),
        "RUSTFLAGS": " ".join(rustflags),
        # maturin (PEP 517 hooks) reads its command-line arguments from here. A cross build skips the hook's
        # own `-i <venv>/bin/python` (no version in the name), so the version is named: maturin then uses its
        # own sysconfig data for that CPython on the target.
        "MATURIN_PEP517_ARGS": (
            f"--target {triple} --zig --compatibility {_compatibility(target)} --interpreter python{python}"
        ),
        # setuptools-rust builds for CARGO_BUILD_TARGET and links with the target's linker variable.
        "CARGO_BUILD_TARGET": triple,
        "CARGO_ZIGBUILD_CACHE_DIR": str(cache_root() / "rust" / "cargo-zigbuild"),
    }
    if linker is not None:
        env[_target_variable("CARGO_TARGET_", triple, "_LINKER")] = str(linker)
    env.update(_host_compiler_environment(toolchain, triple))
    return RustBuild(
        environment=env,
        tool_versions={"rustc": toolchain.version, "rust_target": triple},
        notes=notes,
    )


def fix_musl_libc_needed(wheel: Path, target: str, python: Path, work: Path) -> bool:
    """maturin's zig link records NEEDED `libc.so` (zig's stub's name) in a musl extension; musl systems and
    auditwheel's musllinux policy know libc as libc.musl-<arch>.so.1 (the zig C wrappers rename it the same
    way). Rewrites the wheel in place (`wheel unpack`/`wheel pack` regenerate its RECORD); True if changed."""
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.elffile import ELFFile

    from pipeline.builders.backends.zig.toolchain import musl_libc_soname, patchelf_executable

    soname = musl_libc_soname(target)
    if soname is None:
        return False
    unpacked = work / "musl-libc-fix"
    shutil.rmtree(unpacked, ignore_errors=True)
    subprocess.run(
        [str(python), "-m", "wheel", "unpack", "--dest", str(unpacked), str(wheel)],
        check=True,
        capture_output=True,
    )
    changed = False
    for shared in unpacked.rglob("*.so"):
        with shared.open("rb") as stream:
            if stream.read(4) != b"\x7fELF":
                continue
            stream.seek(0)
            needed = [
                str(getattr(tag, "needed", ""))
                for section in ELFFile(stream).iter_sections()
                if isinstance(section, DynamicSection)
                for tag in section.iter_tags()
                if tag.entry.d_tag == "DT_NEEDED"
            ]
        if "libc.so" in needed:
            subprocess.run(
                [patchelf_executable(), "--replace-needed", "libc.so", soname, str(shared)],
                check=True,
                capture_output=True,
            )
            changed = True
    if changed:
        (folder,) = [p for p in unpacked.iterdir() if p.is_dir()]
        wheel.unlink()
        subprocess.run(
            [str(python), "-m", "wheel", "pack", "--dest-dir", str(wheel.parent), str(folder)],
            check=True,
            capture_output=True,
        )
    shutil.rmtree(unpacked, ignore_errors=True)
    return changed
