"""Minimal valid wheels, made on the spot, for the index tests and benchmarks (10,000 real downloads would
test the network, not the index). Each is installable by pip: METADATA, WHEEL, a RECORD with hashes, and
one importable module."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from pathlib import Path

from packaging.utils import canonicalize_name

FIXED_TIME = (2024, 1, 1, 0, 0, 0)  # reproducible bytes: same arguments, same file


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def wheel_bytes(
    name: str,
    version: str,
    *,
    requires_python: str | None = None,
    payload: str = "",
    tag: str = "py3-none-any",
) -> bytes:
    module = canonicalize_name(name).replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    if requires_python:
        metadata += f"Requires-Python: {requires_python}\n"
    metadata += f"Summary: synthetic wheel {name} {version}\n\n"
    members = {
        f"{module}/__init__.py": f"VERSION = {version!r}\n{payload}".encode(),
        f"{dist_info}/METADATA": metadata.encode(),
        f"{dist_info}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: rewheel-synthetic\nRoot-Is-Purelib: {str(tag.endswith('-any')).lower()}\n"
            f"Tag: {tag}\n"
        ).encode(),
    }
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in members.items())
    record += f"{dist_info}/RECORD,,\n"
    members[f"{dist_info}/RECORD"] = record.encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in members.items():
            info = zipfile.ZipInfo(path, FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def wheel_filename(name: str, version: str, tag: str = "py3-none-any") -> str:
    return f"{canonicalize_name(name).replace('-', '_')}-{version}-{tag}.whl"


def make_wheel(folder: Path, name: str, version: str, **options: str | None) -> Path:
    """A wheel file; options are wheel_bytes' (requires_python, payload, tag: one tag such as
    "cp311-cp311-musllinux_1_2_aarch64", only a label here: the module inside is pure Python)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / wheel_filename(name, version, options.get("tag") or "py3-none-any")
    path.write_bytes(wheel_bytes(name, version, **options))  # type: ignore[arg-type]
    return path


def make_wheels(folder: Path, projects: int, versions: int, *, prefix: str = "pkg") -> list[Path]:
    """projects x versions wheels named <prefix>-<i> 1.0.0 .. 1.0.<versions-1>."""
    return [
        make_wheel(folder, f"{prefix}-{p}", f"1.0.{v}", requires_python=">=3.8")
        for p in range(projects)
        for v in range(versions)
    ]
