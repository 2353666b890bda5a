"""Which distributions of a requirements file lack a wheel for a target: the `gaps` stage.

Resolution is uv's (`uv pip compile --python-platform ... --python-version ... --format pylock.toml`): a real
resolver that evaluates environment markers for the target (platform_machine, sys_platform, python_version of
T and V, not the host's, which pip's `--platform` cannot do) and still accepts distributions that only have an
sdist (pip's target options demand `--only-binary :all:`, which would hide exactly the cases that need a build).
Its PEP 751 lock lists, for every resolved distribution, the sdist and the wheels with their URLs and sha256 as
the index serves them, so one call gives both the resolved set and the file lists, hash-pinned.

The index is whatever pip is configured with (`pip config list` and PIP_* variables): uv is handed the same
index URL, extra index URLs and find-links, so `gaps` sees what pip on the target would see.

Status per distribution, judged with packaging.tags against the target's own ordered tag list (so a wheel
uv's platform name also accepts, e.g. a newer musllinux policy, is not taken for granted):
- upstream-wheel: a binary wheel on the index fits the target (the best one, as pip would rank it);
- pure: the best fitting wheel is py*-none-any;
- needs-build: no wheel fits, an sdist exists;
- unavailable: neither (nothing rewheel can do without another source).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename

from pipeline import toml
from pipeline.errors import RewheelError
from pipeline.targets import Target, get_target

UPSTREAM_WHEEL = "upstream-wheel"
PURE = "pure"
NEEDS_BUILD = "needs-build"
UNAVAILABLE = "unavailable"
STATUSES = (UPSTREAM_WHEEL, PURE, NEEDS_BUILD, UNAVAILABLE)

_PYTHON_VERSION = re.compile(r"^3\.\d{1,2}$")
_WINDOWS_UV_PLATFORMS = {
    "win_amd64": "x86_64-pc-windows-msvc",
    "win_arm64": "aarch64-pc-windows-msvc",
    "win32": "i686-pc-windows-msvc",
}


@dataclass(frozen=True)
class IndexFile:
    """One file of a resolved distribution, as the index lists it."""

    filename: str
    url: str
    sha256: str

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")


@dataclass
class Gap:
    """One distribution of the resolved set and what the target needs for it."""

    name: str  # canonical (normalised) name
    version: str
    status: str
    file: IndexFile | None  # the wheel pip would pick, or the sdist for needs-build
    recipe: Path | None = None  # recipes/<name>.toml when one exists
    recipe_has_version: bool = False  # the recipe already lists this version as a [[source]]
    sdist: IndexFile | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "status": self.status,
            "recipe": str(self.recipe) if self.recipe else None,
            "recipe_has_version": self.recipe_has_version,
            "file": self.file.filename if self.file else None,
            "sha256": self.file.sha256 if self.file else None,
            "url": self.file.url if self.file else None,
        }


@dataclass
class GapsReport:
    target: str
    python: str
    requirements: list[Gap] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(g.status == status for g in self.requirements)

    def to_json(self) -> dict[str, object]:
        return {
            "target": self.target,
            "python": self.python,
            "counts": {s: self.count(s) for s in STATUSES},
            "requirements": [g.to_json() for g in self.requirements],
        }


# ------------------------------------------------------------------------------------------- target tags


def target_platforms(target: Target) -> list[str]:
    if target.is_linux and target.policy_platform is None:
        raise RewheelError(
            f"target {target.name}: policy {target.policy!r} is not a manylinux/musllinux policy"
        )
    if not (target.is_linux or target.is_windows):
        raise RewheelError(f"target {target.name}: gaps needs an operating-system target (linux or windows)")
    return target.compatible_platforms()


def target_tags(target: Target, python: str) -> list[Tag]:
    """Every tag a CPython `python` on `target` accepts, best first (pip's preference order)."""
    major, _, minor = python.partition(".")
    version = (int(major), int(minor))
    platforms = target_platforms(target)
    interpreter = f"cp{major}{minor}"
    return [
        *cpython_tags(version, abis=[interpreter], platforms=platforms),
        *compatible_tags(version, interpreter=interpreter, platforms=platforms),
    ]


def uv_platform(target: Target) -> str:
    """uv's --python-platform for the target (it sets the marker environment: machine, sys_platform, ...)."""
    if target.is_linux:
        if target.libc == "musl":
            return f"{target.arch}-unknown-linux-musl"
        return f"{target.arch}-{target.policy}"  # e.g. aarch64-manylinux_2_17
    if target.is_windows and target.platform_tag in _WINDOWS_UV_PLATFORMS:
        return _WINDOWS_UV_PLATFORMS[target.platform_tag]
    raise RewheelError(f"target {target.name}: no uv platform for it; gaps handles Linux and Windows targets")


def best_wheel(files: list[IndexFile], tags: list[Tag]) -> IndexFile | None:
    """The wheel pip would install: the one whose best tag ranks highest in the target's list."""
    rank = {tag: number for number, tag in enumerate(tags)}
    best: tuple[int, IndexFile] | None = None
    for file in files:
        if not file.is_wheel:
            continue
        try:
            _, _, _, wheel_tags = parse_wheel_filename(file.filename)
        except ValueError:
            continue
        position = min((rank[t] for t in wheel_tags if t in rank), default=None)
        if position is not None and (best is None or position < best[0]):
            best = (position, file)
    return best[1] if best else None


def is_pure(filename: str) -> bool:
    _, _, _, tags = parse_wheel_filename(filename)
    return all(t.abi == "none" and t.platform == "any" for t in tags)


# ------------------------------------------------------------------------------------------- resolving


def pip_index_options() -> list[str]:
    """uv options naming the indexes pip is configured with (pip.conf files and PIP_* variables).

    Read through pip itself (`pip config list`), so every place pip looks is honoured; an unset index-url
    leaves uv on its default, which is pip's default index too."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    )
    settings: dict[str, str] = {}
    for line in result.stdout.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        option = key.rpartition(".")[2]
        value = value.strip().strip("'\"")
        # pip lists :env: values after the files': later lines win, as in pip.
        settings[option] = value
    options: list[str] = []
    if settings.get("index-url"):
        options += ["--index-url", settings["index-url"]]
    for url in settings.get("extra-index-url", "").split():
        if url.startswith("file:") and not Path(url.removeprefix("file://")).is_dir():
            continue  # pip ignores a missing local index with a warning; uv would fail on it
        options += ["--extra-index-url", url]
    for location in settings.get("find-links", "").split():
        options += ["--find-links", location]
    if any(o in options for o in ("--extra-index-url", "--find-links")):
        # pip considers every index's files together and takes the best version; uv's default stops at
        # the first index that has the project.
        options += ["--index-strategy", "unsafe-best-match"]
    return options


def _uv() -> str:
    try:
        from uv import find_uv_bin
    except ImportError:
        raise RewheelError("gaps needs uv (pip install uv): it is the resolver") from None
    return str(find_uv_bin())


def resolve(
    requirements: Path, target: Target, python: str, *, no_deps: bool = False
) -> list[dict[str, object]]:
    """The resolved set as PEP 751 lock entries (name, version, sdist, wheels) for `target` and `python`."""
    with tempfile.TemporaryDirectory(prefix="rewheel-gaps-") as tmp:
        lock = Path(tmp) / "pylock.toml"
        command = [
            _uv(), "pip", "compile", str(requirements), "--format", "pylock.toml", "-o", str(lock),
            "--python-platform", uv_platform(target), "--python-version", python,
            "--no-header", "--quiet", *(["--no-deps"] if no_deps else []), *pip_index_options(),
        ]  # fmt: skip
        completed = subprocess.run(command, capture_output=True, text=True)
        if completed.returncode != 0:
            lines = [ln.strip() for ln in completed.stderr.splitlines() if ln.strip()]
            reason = " ".join(lines[-6:]) if lines else f"uv exited {completed.returncode}"
            raise RewheelError(
                f"{requirements}: cannot resolve for {target.name} / Python {python}: {reason}"
            )
        data = toml.loads(lock.read_text(encoding="utf-8"))
    packages: list[dict[str, object]] = data.get("packages", [])
    return packages


def _index_file(entry: dict[str, object]) -> IndexFile:
    url = str(entry.get("url") or entry.get("path") or "")
    hashes = entry.get("hashes") or {}
    sha256 = str(hashes.get("sha256", "")) if isinstance(hashes, dict) else ""
    name = str(entry.get("name") or url.rsplit("/", 1)[-1].split("#", 1)[0])
    return IndexFile(filename=name, url=url, sha256=sha256)


def classify(package: dict[str, object], tags: list[Tag]) -> Gap:
    name = canonicalize_name(str(package["name"]))
    version = str(package.get("version", ""))
    wheels = [_index_file(w) for w in package.get("wheels", []) or []]  # type: ignore[attr-defined]
    sdist = _index_file(package["sdist"]) if package.get("sdist") else None  # type: ignore[arg-type]
    wheel = best_wheel(wheels, tags)
    if wheel is not None:
        status = PURE if is_pure(wheel.filename) else UPSTREAM_WHEEL
        return Gap(name, version, status, wheel, sdist=sdist)
    if sdist is not None:
        return Gap(name, version, NEEDS_BUILD, sdist, sdist=sdist)
    return Gap(name, version, UNAVAILABLE, None)


def recipes_by_name(recipes_dir: Path) -> dict[str, Path]:
    """Normalised project name -> recipe file, for every recipe in `recipes_dir`."""
    from pipeline.recipe import load_recipe

    found: dict[str, Path] = {}
    if recipes_dir.is_dir():
        for path in sorted(recipes_dir.glob("*.toml")):
            recipe = load_recipe(path)
            for project in {recipe.name, *(s.project for s in recipe.source if s.project)}:
                found[canonicalize_name(project)] = path
    return found


def check_python(python: str) -> str:
    if not _PYTHON_VERSION.match(python):
        raise RewheelError(f"--python must be a CPython version such as 3.11, got {python!r}")
    return python


def find_gaps(
    requirements: Path, target_name: str, python: str, *, recipes_dir: Path | None = None
) -> GapsReport:
    """Resolve `requirements` for the target and say, per distribution, what the target needs."""
    from pipeline.paths import project_root
    from pipeline.recipe import load_recipe

    check_python(python)
    target = get_target(target_name)
    if not requirements.is_file():
        raise RewheelError(f"{requirements}: no such requirements file")
    tags = target_tags(target, python)
    report = GapsReport(target=target.name, python=python)
    recipes = recipes_by_name(recipes_dir or project_root() / "recipes")
    for package in resolve(requirements, target, python):
        gap = classify(package, tags)
        recipe_path = recipes.get(gap.name)
        if recipe_path is not None:
            gap.recipe = recipe_path
            gap.recipe_has_version = any(s.version == gap.version for s in load_recipe(recipe_path).source)
        report.requirements.append(gap)
    report.requirements.sort(key=lambda g: g.name)
    return report
