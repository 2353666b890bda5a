"""The fetch layer shared by every stage: pinned downloads into a content-addressed cache.

Files come from a URL (urllib) or from the package index by name + version through pip itself, so the
user's index configuration (PIP_INDEX_URL, pip.conf, proxies, certificates) applies. Nothing unverified is
ever handed to a caller: a download is hashed in a private temporary folder and only moved into the cache,
at <cache>/sha256/<ab>/<digest>/<filename>, when its sha256 matches the pin.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from pipeline.errors import FetchError, HashMismatch
from pipeline.paths import downloads_cache

CHUNK = 1 << 20
MAX_DOWNLOAD_BYTES = 2 << 30  # no source rewheel handles is near 2 GiB; bigger means something is wrong


@dataclass(frozen=True)
class Pin:
    """What to fetch: a file name and its sha256, plus where to get it."""

    filename: str
    sha256: str
    url: str | None = None
    project: str | None = None  # name on the package index
    version: str | None = None

    def describe(self) -> str:
        return self.url or f"{self.project}=={self.version} ({self.filename})"


def cached_path(pin: Pin, cache: Path | None = None) -> Path:
    root = cache or downloads_cache()
    return root / pin.sha256[:2] / pin.sha256 / pin.filename


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(pin: Pin, cache: Path | None = None, *, progress: bool = False) -> Path:
    """Return the cached, verified file for `pin`, downloading it first when needed."""
    if len(pin.sha256) != 64 or any(c not in "0123456789abcdef" for c in pin.sha256):
        raise FetchError(f"{pin.describe()}: pinned sha256 must be 64 lowercase hex characters")
    target = cached_path(pin, cache)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # The temporary folder sits in the cache so the final rename is atomic (same filesystem).
    with tempfile.TemporaryDirectory(prefix=".incoming-", dir=target.parent.parent) as tmp:
        staging = Path(tmp)
        if progress:
            print(f"fetch: {pin.describe()}", file=sys.stderr, flush=True)
        if pin.url:
            downloaded = _download_url(pin, staging)
        elif pin.project and pin.version:
            downloaded = _download_from_index(pin, staging)
        else:
            raise FetchError(f"{pin.filename}: a pin needs a url, or a project and version")
        actual = sha256_of(downloaded)
        if actual != pin.sha256:
            raise HashMismatch(pin.describe(), pin.sha256, actual)
        os.replace(downloaded, target)
    return target


def _download_url(pin: Pin, staging: Path) -> Path:
    assert pin.url is not None
    destination = staging / pin.filename
    try:
        with urllib.request.urlopen(pin.url, timeout=60) as response, destination.open("wb") as out:
            total = 0
            while block := response.read(CHUNK):
                total += len(block)
                if total > MAX_DOWNLOAD_BYTES:
                    raise FetchError(f"{pin.url}: larger than {MAX_DOWNLOAD_BYTES} bytes; refusing")
                out.write(block)
    except (urllib.error.URLError, OSError) as exc:
        raise FetchError(f"{pin.url}: download failed: {getattr(exc, 'reason', exc)}") from None
    return destination


def _pip_tag_options(filename: str) -> list[str]:
    """pip download options that select exactly this wheel's tags, whatever the host is."""
    try:
        _, _, _, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        raise FetchError(f"{filename}: not a valid wheel file name: {exc}") from None
    options = ["--only-binary", ":all:"]
    platforms = sorted({t.platform for t in tags})
    if platforms != ["any"]:
        for platform in platforms:
            options += ["--platform", platform]
    interpreters = sorted({t.interpreter for t in tags})
    if all(i.startswith("cp") and i[2:].isdigit() for i in interpreters):
        digits = interpreters[0][2:]
        options += ["--python-version", f"{digits[0]}.{digits[1:]}", "--implementation", "cp"]
        for abi in sorted({t.abi for t in tags}):
            options += ["--abi", abi]
    elif platforms != ["any"]:
        options += ["--implementation", "py"]
    return options


def _download_from_index(pin: Pin, staging: Path) -> Path:
    """Use pip itself, with the hash as a requirement constraint: pip refuses a file that does not match
    before it runs anything from it (an sdist's metadata hook, for instance)."""
    requirements = staging / "pin.txt"
    requirements.write_text(f"{pin.project}=={pin.version} --hash=sha256:{pin.sha256}\n", encoding="utf-8")
    if pin.filename.endswith(".whl"):
        selection = _pip_tag_options(pin.filename)
    else:
        # Only this project as an sdist: ":all:" would also force its build requirements (used by pip to
        # prepare metadata) to build from source, e.g. maturin without a Rust toolchain.
        selection = ["--no-binary", str(pin.project)]
    out_dir = staging / "out"
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
        "--quiet", "--require-hashes", "--dest", str(out_dir), *selection, "-r", str(requirements),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [ln.strip() for ln in result.stderr.splitlines() if ln.strip() and "WARNING" not in ln]
        reason = lines[-1] if lines else f"pip exited {result.returncode}"
        if "THESE PACKAGES DO NOT MATCH THE HASHES" in result.stderr:
            raise FetchError(
                f"{pin.describe()}: the index's file does not match the pinned sha256 {pin.sha256}"
            )
        raise FetchError(f"{pin.describe()}: pip download failed: {reason}")
    files = list(out_dir.iterdir()) if out_dir.is_dir() else []
    for file in files:
        if file.name == pin.filename:
            return file
    got = ", ".join(f.name for f in files) or "nothing"
    raise FetchError(f"{pin.describe()}: pip downloaded {got}, not {pin.filename}")


def pin_for_source(source: object, default_project: str) -> Pin:
    """A Pin from a recipe's [[source]] (or [[native]]) entry."""
    return Pin(
        filename=source.filename,  # type: ignore[attr-defined]
        sha256=source.sha256,  # type: ignore[attr-defined]
        url=source.url,  # type: ignore[attr-defined]
        project=getattr(source, "project", None) or default_project,
        version=source.version,  # type: ignore[attr-defined]
    )


def copy_verified(path: Path, destination: Path) -> Path:
    """Copy a cached file out (stages never modify the cache in place)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, destination)
    return destination
