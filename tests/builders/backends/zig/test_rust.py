"""Rust extensions with the zig backend (pipeline/builders/backends/zig/rust.py): orjson (maturin, crates vendored in
its sdist) built for musllinux x86_64 and aarch64 with the Rust std built from rewheel's own rustc + std-source
pair, verified and imported on the musl CPythons (aarch64 under qemu-user); the compiler/source version check;
where a source's crates come from.

Cost, cold (measured on the 2-core machine, shared): the toolset install ~40 s, the std for each musl target
1.5-3 min (cached afterwards under the rewheel cache), each orjson build ~1 min."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from conftest import REPO, ensure_runtime, need_toolset, unavailable, zig_build_job

ORJSON = (
    "orjson",
    "3.13.0",
    "orjson-3.13.0.tar.gz",
    "d1de5eb04485110c5da4c657e49168995d55e076b1ce60f1a042e254f4186c4f",
)


def _project_toolchain():  # type: ignore[no-untyped-def]
    from pipeline.builders.backends.zig import rust

    need_toolset(rust.PROJECT_TOOLSET)
    toolchain = rust._toolchain(rust.PROJECT_RUSTC, rust.PROJECT_CARGO, "toolset rust")
    assert toolchain is not None
    return toolchain


def test_project_pair_is_one_release() -> None:
    """The toolset's rustc and its std source are of one release, and the source carries std's own crates."""
    from pipeline.builders.backends.zig import rust

    toolchain = _project_toolchain()
    assert rust.std_source_version(toolchain.std_source) == toolchain.version
    rust.check_pair(toolchain, toolchain.std_source)
    assert (toolchain.std_source / "library" / "vendor").is_dir()


def test_std_folder_override_moves_the_sysroot_and_keeps_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """REWHEEL_RUST_STD_DIR (a cold-std benchmark's empty folder) holds the same <triple>-<version>-<key>
    folder the cache would; without it the sysroot is under the cache root."""
    from pipeline.builders.backends.zig import rust
    from pipeline.paths import cache_root

    toolchain = _project_toolchain()
    monkeypatch.delenv(rust.STD_DIR_VARIABLE, raising=False)
    cached = rust.std_root(toolchain, "aarch64-unknown-linux-gnu")
    assert cached.parent == cache_root() / "rust" / "std"
    monkeypatch.setenv(rust.STD_DIR_VARIABLE, str(tmp_path / "std"))
    moved = rust.std_root(toolchain, "aarch64-unknown-linux-gnu")
    assert moved == (tmp_path / "std").resolve() / cached.name


def test_a_path_rustc_of_another_release_is_refused_naming_both_versions() -> None:
    """A compiler found on PATH (the image's rustup) paired with the toolset's std source of another release."""
    from pipeline.builders.backends.zig import rust
    from pipeline.errors import RewheelError

    own = _project_toolchain()
    on_path = rust._path_toolchain()
    if on_path is None or on_path.version == own.version:
        unavailable(f"needs a rustc on PATH of a release other than {own.version}")
    assert on_path is not None
    with pytest.raises(RewheelError) as refused:
        rust.check_pair(on_path, own.std_source)
    message = str(refused.value)
    assert f"rustc {on_path.version}" in message and f"std source {own.version}" in message
    assert "\n" not in message


def test_vendored_crates_are_found_in_the_sdist_listing(pypi_file) -> None:  # type: ignore[no-untyped-def]
    from pipeline.builders.backends.zig.rust import crates_finding, vendored_in_listing
    from pipeline.source_inspect import list_source, needs_rust

    listing = list_source(pypi_file(*ORJSON))
    assert needs_rust(listing)
    assert vendored_in_listing(listing) == "include/cargo"
    assert crates_finding(listing).startswith("crates vendored in the sdist (include/cargo/)")


@pytest.fixture(scope="module")
def orjson_musl_x86_64(tmp_path_factory):  # type: ignore[no-untyped-def]
    need_toolset("rust")
    ensure_runtime("musl-cpython-3.11-x86_64")
    started = time.monotonic()
    job = zig_build_job(
        REPO / "recipes" / "orjson.toml", "musllinux_1_2_x86_64", tmp_path_factory.mktemp("wh")
    )
    return job, time.monotonic() - started


@pytest.mark.slow
def test_orjson_musllinux_x86_64_cp311_builds_verifies_and_imports(orjson_musl_x86_64) -> None:  # type: ignore[no-untyped-def]
    job, _ = orjson_musl_x86_64
    assert job["status"] == "built", job
    (wheel,) = job["wheels"]
    assert Path(wheel).name == "orjson-3.13.0-cp311-cp311-musllinux_1_2_x86_64.whl"
    # The recipe's test command serialises a dataclass and a datetime through the Rust code, on musl.
    assert job["smoke"][0]["status"] == "passed", job["smoke"]
    assert job["smoke"][0]["runtime"] == "musl-cpython-3.11-x86_64"


@pytest.mark.slow
def test_std_is_built_once_per_target(orjson_musl_x86_64) -> None:  # type: ignore[no-untyped-def]
    from pipeline.builders.backends.zig import rust

    toolchain = _project_toolchain()
    root = rust.std_root(toolchain, "x86_64-unknown-linux-musl")
    assert (root / ".rewheel-complete").is_file()
    started = time.monotonic()
    sysroot = rust.ensure_std(toolchain, "x86_64-unknown-linux-musl")
    assert time.monotonic() - started < 2
    lib = sysroot / "lib" / "rustlib" / "x86_64-unknown-linux-musl" / "lib"
    assert any(lib.glob("libstd-*.rlib")) and any(lib.glob("libpanic_abort-*.rlib"))
    assert not (root / "target").exists()  # the intermediate build folder is not kept


@pytest.mark.slow
def test_orjson_musllinux_aarch64_imports_under_qemu(tmp_path: Path) -> None:
    need_toolset("rust")
    ensure_runtime("musl-cpython-3.11-aarch64")
    job = zig_build_job(REPO / "recipes" / "orjson.toml", "musllinux_1_2_aarch64", tmp_path / "wh")
    (wheel,) = job["wheels"]
    assert Path(wheel).name == "orjson-3.13.0-cp311-cp311-musllinux_1_2_aarch64.whl"
    # Without the recipe's build.rs patch the build turns on AVX-512 code for aarch64 and fails; here the
    # wheel imports and runs the recipe's test command on the aarch64 musl CPython under qemu-user.
    assert job["smoke"][0]["status"] == "passed", job["smoke"]
    assert job["smoke"][0]["runtime"] == "musl-cpython-3.11-aarch64"


# Two small crates from Debian's librust-*-dev packages (bookworm), pinned by the .deb's sha256.
DEBIAN_CRATES = [
    {
        "kind": "deb",
        "package": "librust-itoa-dev",
        "version": "1.0.1-2",
        "filename": "librust-itoa-dev_1.0.1-2_amd64.deb",
        "sha256": "42b9e2912127c5e2ae2ed959baf93667434422fdf924ff606364a54302fedbb0",
    },
    {
        "kind": "deb",
        "package": "librust-cfg-if-dev",
        "version": "1.0.0-1",
        "filename": "librust-cfg-if-dev_1.0.0-1_amd64.deb",
        "sha256": "d14d3e514f6a497ad3bda68b6e810ddf5b821da7016ee388a45e97f94e15caa9",
    },
]
USES_CRATES = "pub fn text(n: u64) -> String {\n    cfg_if::cfg_if! { if #[cfg(unix)] { itoa::Buffer::new().format(n).to_string() } else { String::new() } }\n}\n"


def _crate_using(tmp_path: Path, own_config: str) -> Path:
    tree = tmp_path / "demo"
    (tree / "src").mkdir(parents=True)
    (tree / "Cargo.toml").write_text(
        '[package]\nname = "demo"\nversion = "0.1.0"\nedition = "2021"\n\n'
        '[dependencies]\nitoa = "1"\ncfg-if = "1"\n',
        encoding="utf-8",
    )
    (tree / "src" / "lib.rs").write_text(USES_CRATES, encoding="utf-8")
    (tree / ".cargo").mkdir()
    (tree / ".cargo" / "config.toml").write_text(own_config, encoding="utf-8")
    return tree


@pytest.mark.slow
def test_debian_crates_become_a_directory_source_that_overrides_the_crates_own_config(tmp_path: Path) -> None:
    """The recipe's pinned .debs, unpacked with regenerated checksums, replace the registry even though the
    crate's own .cargo/config.toml (which overrides the cargo home's) pointed it elsewhere; a file changed
    after unpacking is refused by cargo's checksum check."""
    import subprocess

    from pipeline.builders.backends.zig import rust
    from pipeline.recipe import CrateSource

    toolchain = _project_toolchain()
    crates = [CrateSource.model_validate(c) for c in DEBIAN_CRATES]
    directory = rust.crate_directory(crates)
    assert sorted(p.name for p in directory.iterdir()) == ["cfg-if-1.0.0", "itoa-1.0.1"]
    own = '[source.crates-io]\nreplace-with = "elsewhere"\n\n[source.elsewhere]\ndirectory = "nowhere"\n\n[build]\njobs = 1\n'
    tree = _crate_using(tmp_path, own)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CARGO_HOME": str(tmp_path / "cargo-home")}
    rust.use_crate_directory(tree, directory)
    assert "jobs = 1" in (tree / ".cargo" / "config.toml").read_text()  # the crate's other settings stay
    built = subprocess.run(
        [str(toolchain.cargo), "build", "--offline"], cwd=tree, env=env, capture_output=True, text=True
    )
    assert built.returncode == 0, built.stderr[-2000:]

    tampered = tmp_path / "tampered"
    shutil.copytree(directory, tampered)
    (tampered / "itoa-1.0.1" / "src" / "lib.rs").write_text("// changed\n", encoding="utf-8")
    other = _crate_using(tmp_path / "second", own)
    rust.use_crate_directory(other, tampered)
    refused = subprocess.run(
        [str(toolchain.cargo), "build", "--offline"], cwd=other, env=env, capture_output=True, text=True
    )
    assert refused.returncode != 0 and "checksum" in refused.stderr, refused.stderr[-2000:]


@pytest.mark.slow
def test_rpds_py_recipe_crates_resolve_offline(pypi_file, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The rpds-py recipe's Debian crates are the whole closure its patched Cargo.toml needs: cargo resolves it
    with no registry (the full build is `rewheel build recipes/rpds-py.toml`, measured in docs/zig-backend.md)."""
    import subprocess

    from pipeline.builders.backends.zig import rust
    from pipeline.patching import apply_recipe_patches
    from pipeline.recipe import load_recipe
    from pipeline.unpack import unpack

    toolchain = _project_toolchain()
    recipe = load_recipe(REPO / "recipes" / "rpds-py.toml")
    (source,) = recipe.source
    sdist = pypi_file("rpds-py", source.version, source.filename, source.sha256)
    tree = next(unpack(sdist, tmp_path / "src").iterdir())
    apply_recipe_patches(recipe, source.version, "musllinux_1_2_x86_64", "source", tree)
    note = rust.prepare_crates(tree, toolchain, tmp_path / "cargo-home", crates=recipe.crates)
    assert "22 pinned crate archive(s)" in note and "Cargo.lock dropped" in note
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CARGO_HOME": str(tmp_path / "cargo-home")}
    resolved = subprocess.run(
        [str(toolchain.cargo), "metadata", "--offline", "--format-version", "1"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )
    assert resolved.returncode == 0, resolved.stderr[-2000:]
    assert '"name":"pyo3","version":"0.22.6"' in resolved.stdout


@pytest.mark.slow
def test_std_sysroot_is_taken_from_a_runtime_source_instead_of_built(
    orjson_musl_x86_64, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """The std built here, exported as the `rust-std` archive, is what an empty cache with a runtime source
    takes before building: the first Rust build on a team's other machines skips the minutes of build-std."""
    import os
    import subprocess
    import sys

    from pipeline.builders.backends.zig import rust

    toolchain = _project_toolchain()
    root = rust.std_root(toolchain, "x86_64-unknown-linux-musl")
    first, second, out = tmp_path / "first", tmp_path / "second", tmp_path / "out"
    shutil.copytree(root, first / "rust" / "std" / root.name, symlinks=True)
    env = {k: v for k, v in os.environ.items() if k != "REWHEEL_RUNTIME_SOURCE"}
    export = subprocess.run(
        [sys.executable, "-m", "pipeline", "runtimes", "export", "rust-std", "--out", str(out)],
        capture_output=True, text=True, env={**env, "REWHEEL_CACHE_DIR": str(first)}, timeout=900,
    )  # fmt: skip
    assert export.returncode == 0, export.stderr
    assert (out / "rust-std.tar.xz").is_file() and (out / "rust-std.json").is_file()
    probe = (
        "from pipeline.builders.backends.zig import rust\n"
        "toolchain, build = rust.find_toolchain('x86_64-unknown-linux-musl')\n"
        "print(rust.ensure_std(toolchain, 'x86_64-unknown-linux-musl'))\n"
    )
    taken = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True, text=True, timeout=900,
        env={**env, "REWHEEL_CACHE_DIR": str(second), "REWHEEL_RUNTIME_SOURCE": str(out)},
    )  # fmt: skip
    assert taken.returncode == 0, taken.stderr
    assert "rust-std: imported from" in taken.stderr, taken.stderr
    assert "building the Rust std" not in taken.stderr, taken.stderr
    sysroot = Path(taken.stdout.strip())
    assert sysroot.is_relative_to(second)
    lib = sysroot / "lib" / "rustlib" / "x86_64-unknown-linux-musl" / "lib"
    assert any(lib.glob("libstd-*.rlib"))
