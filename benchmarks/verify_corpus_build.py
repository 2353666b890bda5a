"""Build benchmarks/data/verify_corpus.json: real compiled wheels chosen by project x platform x Python.

Each request asks pip (the ordinary client, so the user's index configuration applies) for the newest wheel
of PROJECT that fits one platform / Python / ABI; the file it picks is hashed and moved into rewheel's
content-addressed download cache (pipeline.fetch.cached_path), so the benchmark's later `fetch` of the same
pin finds it there. The manifest records filename, project, version, sha256, size and the language of the
extension. Run once: `python benchmarks/verify_corpus_build.py` (a few hundred pip calls; resumable).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.utils import parse_wheel_filename

from pipeline.fetch import Pin, cached_path
from pipeline.util import sha256_file

MANIFEST = Path(__file__).resolve().parent / "data" / "verify_corpus.json"

# Extension language per project (what its compiled modules are written in).
LANGUAGE = {
    "markupsafe": "C", "pyyaml": "Cython", "ujson": "C++", "cffi": "C", "psutil": "C", "simplejson": "C",
    "wrapt": "C", "multidict": "C", "zstandard": "C", "lz4": "C", "regex": "C", "charset-normalizer": "C",
    "pillow": "C", "numpy": "C+Fortran", "scipy": "Fortran", "pycryptodome": "C", "bcrypt": "Rust",
    "cryptography": "Rust", "argon2-cffi-bindings": "C", "pynacl": "C", "setproctitle": "C", "xxhash": "C",
    "msgpack": "Cython", "kiwisolver": "C++", "greenlet": "C++", "rapidfuzz": "C++", "contourpy": "C++",
    "pyzmq": "C++", "frozenlist": "Cython", "yarl": "Cython", "propcache": "Cython", "aiohttp": "Cython",
    "cytoolz": "Cython", "gevent": "Cython", "shapely": "C++", "orjson": "Rust", "pydantic-core": "Rust",
    "rpds-py": "Rust", "jiter": "Rust", "tiktoken": "Rust", "watchfiles": "Rust", "nh3": "Rust",
    "pywin32": "C++", "ormsgpack": "Rust", "lxml": "Cython", "google-crc32c": "C", "scikit-misc": "Fortran",
    "pyerfa": "C", "levenshtein": "C++", "ruamel-yaml-clib": "C",
}  # fmt: skip

# (platform, python, abi) per class. pip expands a manylinux platform to the older levels, so the class of
# the wheel is read from the file it picks, not from the request.
LINUX = [
    ("manylinux2014_x86_64", "3.10", "cp310"),
    ("manylinux_2_28_x86_64", "3.12", "cp312"),
    ("musllinux_1_1_x86_64", "3.9", "cp39"),
    ("musllinux_1_2_x86_64", "3.13", "cp313"),
    ("manylinux2014_aarch64", "3.11", "cp311"),
    ("manylinux_2_28_aarch64", "3.14", "cp314"),
    ("musllinux_1_1_aarch64", "3.10", "cp310"),
    ("musllinux_1_2_aarch64", "3.12", "cp312"),
]
WINDOWS = [("win_amd64", "3.11", "cp311"), ("win_arm64", "3.12", "cp312"), ("win32", "3.10", "cp310")]
FREE_THREADED = [("manylinux_2_28_x86_64", "3.13", "cp313t"), ("win_amd64", "3.14", "cp314t"),
                 ("musllinux_1_2_aarch64", "3.14", "cp314t")]  # fmt: skip
ABI3 = [("manylinux_2_28_x86_64", "3.12", "abi3"), ("win_amd64", "3.13", "abi3"),
        ("musllinux_1_2_aarch64", "3.11", "abi3")]  # fmt: skip

SMALL = ["markupsafe", "pyyaml", "ujson", "cffi", "simplejson", "wrapt", "multidict", "zstandard", "lz4",
         "regex", "charset-normalizer", "msgpack", "kiwisolver", "greenlet", "rapidfuzz", "contourpy",
         "frozenlist", "yarl", "propcache", "orjson", "pydantic-core", "rpds-py", "jiter", "xxhash",
         "setproctitle", "google-crc32c", "ruamel-yaml-clib", "levenshtein"]  # fmt: skip
ABI3_PROJECTS = ["cryptography", "bcrypt", "argon2-cffi-bindings", "pynacl", "pycryptodome", "psutil", "nh3"]
EXTRA = [  # bigger or special wheels on a few platforms each
    ("pillow", ["win_amd64", "musllinux_1_2_x86_64", "manylinux_2_28_aarch64", "win_arm64"]),
    ("numpy", ["manylinux_2_28_x86_64", "win_arm64", "musllinux_1_2_aarch64"]),
    ("scipy", ["manylinux2014_x86_64", "win_amd64", "musllinux_1_2_x86_64"]),
    ("scikit-misc", ["manylinux_2_28_x86_64", "win_amd64"]),
    ("gevent", ["manylinux_2_28_x86_64", "musllinux_1_2_x86_64", "win_amd64"]),
    ("pyzmq", ["manylinux_2_28_x86_64", "win_amd64", "musllinux_1_2_aarch64"]),
    ("lxml", ["manylinux_2_28_x86_64", "win32", "musllinux_1_1_x86_64"]),
    ("shapely", ["manylinux2014_aarch64", "win_amd64"]),
    ("aiohttp", ["manylinux_2_28_x86_64", "musllinux_1_1_aarch64", "win32"]),
    ("cytoolz", ["musllinux_1_2_x86_64", "win_amd64"]),
    ("pywin32", ["win_amd64", "win32", "win_arm64"]),
    ("tiktoken", ["manylinux_2_28_aarch64", "win_amd64"]),
    ("watchfiles", ["musllinux_1_1_x86_64", "win_arm64"]),
    ("ormsgpack", ["manylinux2014_x86_64", "win_amd64"]),
    ("pyerfa", ["manylinux2014_x86_64", "win32"]),
    ("psutil", ["win32", "musllinux_1_1_x86_64"]),
]
PYTHON_FOR = {p: (v, a) for p, v, a in LINUX + WINDOWS}


def requests() -> list[tuple[str, str, str, str]]:
    wanted = []
    for project in SMALL:
        for platform, python, abi in LINUX + WINDOWS:
            wanted.append((project, platform, python, abi))
    for project in ["orjson", "pydantic-core", "markupsafe", "frozenlist", "wrapt", "zstandard", "rpds-py",
                    "charset-normalizer", "multidict", "yarl", "propcache", "greenlet"]:  # fmt: skip
        for platform, python, abi in FREE_THREADED:
            wanted.append((project, platform, python, abi))
    for project in ABI3_PROJECTS:
        for platform, python, abi in ABI3:
            wanted.append((project, platform, python, abi))
    for project, platforms in EXTRA:
        for platform in platforms:
            python, abi = PYTHON_FOR[platform]
            wanted.append((project, platform, python, abi))
    return wanted


def pip_download_many(
    projects: list[str], platform: str, python: str, abi: str, dest: Path
) -> dict[str, Path]:
    """One pip process for every project of one platform/Python/ABI (pip's start-up and index session are
    shared); a project with no fitting wheel is dropped and the rest retried."""
    import re

    abis = [abi] if abi in ("abi3",) or abi.endswith("t") else [abi, "abi3"]
    remaining = list(projects)
    while remaining:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
                   "--only-binary", ":all:", "--platform", platform, "--python-version", python,
                   "--implementation", "cp", *[x for a in abis for x in ("--abi", a)], "--dest", str(dest),
                   *remaining]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode == 0:
            break
        failed = re.search(r"No matching distribution found for ([A-Za-z0-9_.-]+)", result.stderr)
        if not failed:
            print(f"  pip failed: {result.stderr.strip().splitlines()[-1:]}", flush=True)
            break
        name = failed.group(1).lower()
        print(f"  no wheel of {name} for {platform} {abi}", flush=True)
        remaining = [p for p in remaining if p.lower() != name]
    found: dict[str, Path] = {}
    for wheel in dest.glob("*.whl"):
        name = parse_wheel_filename(wheel.name)[0]
        for project in projects:
            if project.replace("-", "_").lower() == str(name).replace("-", "_").lower():
                found[project] = wheel
    return found


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {"wheels": [], "tried": []}


def merge() -> None:
    """Fold the shards' partial manifests into the manifest (wheels unique by file name)."""
    manifest = _load(MANIFEST)
    for part in sorted(MANIFEST.parent.glob("verify_corpus.part*.json")):
        data = _load(part)
        have = {w["filename"] for w in manifest["wheels"]}
        manifest["wheels"] += [w for w in data["wheels"] if w["filename"] not in have]
        manifest["tried"] += [t for t in data["tried"] if t not in manifest["tried"]]
        part.unlink()
    manifest["wheels"].sort(key=lambda w: w["filename"])
    MANIFEST.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def main() -> int:
    if sys.argv[1:] == ["merge"]:
        merge()
        return 0
    manifest = _load(MANIFEST)
    tried = {tuple(t) for t in manifest["tried"]}
    have = {w["filename"] for w in manifest["wheels"]}
    groups: dict[tuple[str, str, str], list[str]] = {}
    for project, platform, python, abi in requests():
        if (project, platform, python, abi) not in tried:
            groups.setdefault((platform, python, abi), []).append(project)
    for index, ((platform, python, abi), projects) in enumerate(sorted(groups.items()), 1):
        with tempfile.TemporaryDirectory(prefix="corpus-") as tmp:
            found = pip_download_many(projects, platform, python, abi, Path(tmp))
            for project, wheel in sorted(found.items()):
                if wheel.name in have or wheel.name.endswith("-any.whl"):
                    continue  # pure wheels are not what the checker is measured on
                _, version, _, _ = parse_wheel_filename(wheel.name)
                digest = sha256_file(wheel)
                target = cached_path(Pin(wheel.name, digest, project=project, version=str(version)))
                target.parent.mkdir(parents=True, exist_ok=True)
                if not target.is_file():
                    shutil.move(str(wheel), target)
                manifest["wheels"].append({
                    "filename": wheel.name, "project": project, "version": str(version), "sha256": digest,
                    "size": target.stat().st_size, "language": LANGUAGE.get(project, "C"),
                })  # fmt: skip
                have.add(wheel.name)
        manifest["tried"] += [[p, platform, python, abi] for p in projects]
        print(
            f"[{index}/{len(groups)}] {platform} {python} {abi}: {len(found)} of {len(projects)}", flush=True
        )
        manifest["wheels"].sort(key=lambda w: w["filename"])
        MANIFEST.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    print(f"{len(manifest['wheels'])} wheels in {MANIFEST}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PIP_NO_INPUT", "1")
    raise SystemExit(main())
