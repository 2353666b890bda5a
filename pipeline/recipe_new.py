"""Write a recipe for NAME==VERSION from its sdist: the `recipe new` stage.

Everything in the recipe comes from the index and the sdist itself, read without building anything:
- the sdist's file name and sha256, as the index lists them (through uv's resolver, see gaps.py), and the file
  is downloaded and checked against that hash before it is read;
- the build backend ([build-system] of pyproject.toml, setuptools' legacy backend without one) and what the zig
  backend would refuse per target (source_check.cross_build_obstacle, the zig backend's own check);
- test imports: the top-level packages the sdist ships and the extension modules its setup.py declares;
- native C libraries it includes or links (ffi.h / -lffi, yaml.h / -lyaml, zlib.h / -lz, ...): a library some
  recipe already builds for the target gets that recipe's pinned [[native]] entry; one no recipe pins is named
  in a comment, so the reviewer knows what to add.

Where a recipe for the project exists, the version is added to it as another [[source]] (and the targets and
Pythons asked for are added when missing) instead: the file is edited with tomlkit, which keeps its comments
and layout, so the change is a reviewable diff. A new recipe is written with tomlkit too, so what it writes is
valid TOML whatever the sdist's names contain.
"""

from __future__ import annotations

import re
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import tomlkit
from packaging.utils import canonicalize_name

from pipeline import toml
from pipeline.build.backends.zig.rust import RUST_TRIPLES, crates_finding
from pipeline.build.backends.zig.source_check import (
    SourceListing,
    cross_build_obstacle,
    list_source,
    needs_rust,
)
from pipeline.errors import RewheelError
from pipeline.fetch import Pin, fetch
from pipeline.gaps import IndexFile, check_python, resolve
from pipeline.recipe import NativeLibrary, load_recipe, parse_recipe
from pipeline.targets import get_target

DEFAULT_TARGETS = ("musllinux_1_2_x86_64", "musllinux_1_2_aarch64")

# C headers and linker names -> the library rewheel knows by that name in [[native]] entries. Only libraries
# whose absence changes what a wheel can do are listed (the system libraries every target has are not).
NATIVE_HEADERS = {
    "ffi.h": "libffi",
    "yaml.h": "libyaml",
    "zlib.h": "zlib",
    "jpeglib.h": "libjpeg-turbo",
    "lcms2.h": "lcms2",
    "openssl/ssl.h": "openssl",
    "libxml/parser.h": "libxml2",
    "bzlib.h": "bzip2",
    "lzma.h": "xz-utils",
}
NATIVE_LINK_NAMES = {
    "ffi": "libffi",
    "yaml": "libyaml",
    "z": "zlib",
    "jpeg": "libjpeg-turbo",
    "lcms2": "lcms2",
    "ssl": "openssl",
    "xml2": "libxml2",
    "bz2": "bzip2",
    "lzma": "xz-utils",
}

_SOURCE_SUFFIXES = (".c", ".h", ".pyx", ".pxd", ".cpp", ".cc")
_NOT_BUILT = re.compile(r"(^|/)(tests?|testing|docs?|examples?|benchmarks?|bench|ci|tools)(/|$)", re.I)
_INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([\w./+-]+)[>"]', re.M)
_CIMPORT_EXTERN = re.compile(r'cdef\s+extern\s+from\s+["<]([\w./+-]+)[">]')
_EXTENSION = re.compile(r"Extension\(\s*(?:name\s*=\s*)?[\"']([A-Za-z_][\w.]*)[\"']")
_LIBRARIES = re.compile(r"libraries\s*=\s*\[([^\]]*)\]")
_PACKAGE_ROOTS = ("", "src/", "lib/")
_MAX_SOURCE_BYTES = 4 << 20


@dataclass
class SdistFacts:
    """What `recipe new` learnt from an sdist."""

    project: str
    version: str
    file: IndexFile
    summary: str = ""
    build_backend: str = ""
    packages: list[str] = field(default_factory=list)
    extensions: list[str] = field(default_factory=list)
    natives: dict[str, str] = field(default_factory=dict)  # library -> where it was seen
    refusals: dict[str, str] = field(default_factory=dict)  # target -> why the zig backend refuses it
    rust_crates: str = ""  # a Rust source: where its crates come from (zig/rust.py)

    @property
    def imports(self) -> list[str]:
        return [*self.packages, *(e for e in self.extensions if e not in self.packages)]


@dataclass
class RecipeWritten:
    path: Path
    created: bool  # False: an existing recipe was extended (or already had everything)
    facts: SdistFacts
    changed: bool = True  # False: the existing recipe already listed the version, targets and Pythons
    natives_pinned: list[str] = field(default_factory=list)
    natives_unpinned: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "recipe": str(self.path),
            "created": self.created,
            "changed": self.changed,
            "name": self.facts.project,
            "version": self.facts.version,
            "sdist": self.facts.file.filename,
            "sha256": self.facts.file.sha256,
            "build_backend": self.facts.build_backend,
            "imports": self.facts.imports,
            "natives_pinned": self.natives_pinned,
            "natives_unpinned": self.natives_unpinned,
            "refused": self.facts.refusals,
            "rust_crates": self.facts.rust_crates,
        }


# ------------------------------------------------------------------------------------------- the sdist


def parse_requirement(text: str) -> tuple[str, str]:
    name, sep, version = text.partition("==")
    if not sep or not name.strip() or not version.strip() or any(c in version for c in "<>=!~*,;"):
        raise RewheelError(f"{text!r}: give an exact pin, NAME==VERSION")
    return name.strip(), version.strip()


def find_sdist(name: str, version: str, target: str, python: str) -> IndexFile:
    """The sdist of NAME==VERSION as the configured index lists it (name, URL, sha256)."""
    with tempfile.TemporaryDirectory(prefix="rewheel-recipe-") as tmp:
        requirement = Path(tmp) / "requirement.txt"
        requirement.write_text(f"{name}=={version}\n", encoding="utf-8")
        packages = resolve(requirement, get_target(target), python, no_deps=True)
    for package in packages:
        if canonicalize_name(str(package["name"])) == canonicalize_name(name) and package.get("sdist"):
            entry = package["sdist"]
            assert isinstance(entry, dict)
            url = str(entry.get("url", ""))
            hashes = entry.get("hashes") or {}
            return IndexFile(
                filename=url.rsplit("/", 1)[-1].split("#", 1)[0],
                url=url,
                sha256=str(hashes.get("sha256", "")),
            )
    raise RewheelError(f"{name}=={version}: the index has no sdist for it; nothing to write a recipe from")


def _source_texts(path: Path) -> dict[str, str]:
    """Text of the sdist's C/Cython sources, PKG-INFO and setup.py (relative names, outside tests and docs)."""
    texts: dict[str, str] = {}

    def wanted(relative: str, size: int) -> bool:
        return (
            size <= _MAX_SOURCE_BYTES
            and not _NOT_BUILT.search(relative)
            and (relative.endswith(_SOURCE_SUFFIXES) or relative in ("PKG-INFO", "setup.py", "Cargo.toml"))
        )

    def strip_top(member: str) -> str:
        parts = PurePosixPath(member).parts
        return "/".join(parts[1:]) if len(parts) > 1 else ""

    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as zip_archive:
            for info in zip_archive.infolist():
                relative = strip_top(info.filename)
                if relative and not info.is_dir() and wanted(relative, info.file_size):
                    texts[relative] = zip_archive.read(info).decode("utf-8", errors="replace")
        return texts
    with tarfile.open(path) as archive:
        for member in archive:
            relative = strip_top(member.name)
            if relative and member.isreg() and wanted(relative, member.size):
                stream = archive.extractfile(member)
                if stream is not None:
                    texts[relative] = stream.read().decode("utf-8", errors="replace")
    return texts


def build_backend(listing: SourceListing) -> str:
    text = listing.config.get("pyproject.toml")
    if text:
        try:
            backend = toml.loads(text).get("build-system", {}).get("build-backend")
        except toml.TOMLDecodeError:
            return "unknown (pyproject.toml is not valid TOML)"
        if backend:
            return str(backend)
    return "setuptools.build_meta:__legacy__"


def top_level_packages(names: list[str]) -> list[str]:
    """Packages at the sdist's root, or under src/ or lib/ (the layouts setuptools builds from)."""
    found = set()
    for name in names:
        if _NOT_BUILT.search(name):
            continue
        for root in _PACKAGE_ROOTS:
            rest = name[len(root) :] if name.startswith(root) else None
            if rest is None:
                continue
            parts = rest.split("/")
            if len(parts) == 2 and parts[1] == "__init__.py" and parts[0].isidentifier():
                found.add(parts[0])
    return sorted(found)


def maturin_imports(listing: SourceListing, texts: dict[str, str]) -> tuple[list[str], list[str]]:
    """(packages, [extension module]) of a maturin project: the packages under its `python-source` folder and
    the module it builds ([tool.maturin] module-name, else Cargo.toml's [lib] name, else the crate's name)."""
    try:
        pyproject = toml.loads(listing.config.get("pyproject.toml") or "")
        cargo = toml.loads(texts.get("Cargo.toml") or "")
    except toml.TOMLDecodeError:
        return [], []
    if not str(pyproject.get("build-system", {}).get("build-backend", "")).startswith("maturin"):
        return [], []
    settings = pyproject.get("tool", {}).get("maturin", {})
    module = settings.get("module-name") or cargo.get("lib", {}).get("name")
    module = module or str(cargo.get("package", {}).get("name", "")).replace("-", "_")
    folder = str(settings.get("python-source", "")).strip("/")
    packages = []
    if folder:
        inside = [n[len(folder) + 1 :] for n in listing.names if n.startswith(folder + "/")]
        packages = top_level_packages(inside)
    return packages, [module] if module else []


def declared_extensions(texts: dict[str, str], packages: list[str]) -> list[str]:
    """Extension modules setup.py declares by name, plus Cython modules inside the packages."""
    found = set(_EXTENSION.findall(texts.get("setup.py", "")))
    for name in texts:
        if not name.endswith(".pyx"):
            continue
        for root in _PACKAGE_ROOTS:
            if name.startswith(root):
                parts = name[len(root) :].removesuffix(".pyx").split("/")
                if len(parts) > 1 and parts[0] in packages and all(p.isidentifier() for p in parts):
                    found.add(".".join(parts))
    return sorted(found)


def recognised_natives(texts: dict[str, str], names: list[str]) -> dict[str, str]:
    """Library -> the first place that shows the sdist needs it (an #include or a libraries=[...] entry)."""
    shipped = {PurePosixPath(n).name for n in names}
    found: dict[str, str] = {}
    for name, text in sorted(texts.items()):
        if name.endswith((".c", ".h", ".cpp", ".cc")):
            headers = _INCLUDE.findall(text)
        elif name.endswith((".pyx", ".pxd")):
            headers = _CIMPORT_EXTERN.findall(text)
        else:
            continue
        for header in headers:
            library = NATIVE_HEADERS.get(header)
            # A header the sdist ships itself (a vendored copy) is not an outside library.
            if library and PurePosixPath(header).name not in shipped:
                found.setdefault(library, f"{header} in {name}")
    for group in _LIBRARIES.findall(texts.get("setup.py", "")):
        for link_name in re.findall(r"[\"']([\w+.-]+)[\"']", group):
            library = NATIVE_LINK_NAMES.get(link_name)
            if library:
                found.setdefault(library, f"libraries=['{link_name}'] in setup.py")
    return found


def read_sdist(name: str, version: str, targets: list[str], python: str) -> SdistFacts:
    file = find_sdist(name, version, targets[0], python)
    if len(file.sha256) != 64:
        raise RewheelError(f"{name}=={version}: the index gives no sha256 for {file.filename}")
    path = fetch(Pin(filename=file.filename, sha256=file.sha256, url=file.url), progress=True)
    listing = list_source(path)
    texts = _source_texts(path)
    summary = ""
    for line in texts.get("PKG-INFO", "").splitlines():
        if line.startswith("Summary:"):
            summary = line.partition(":")[2].strip()
            break
    packages = top_level_packages(listing.names)
    rust_packages, rust_module = maturin_imports(listing, texts)
    packages = sorted({*packages, *rust_packages})
    facts = SdistFacts(
        project=name,
        version=version,
        file=file,
        summary=summary,
        build_backend=build_backend(listing),
        packages=packages,
        extensions=sorted({*declared_extensions(texts, packages), *rust_module} - set(packages)),
        natives=recognised_natives(texts, listing.names),
    )
    rust = needs_rust(listing)
    if rust:
        facts.rust_crates = crates_finding(listing)
    for target in targets:
        spec = get_target(target)
        if spec.is_linux:
            obstacle = cross_build_obstacle(listing, musl=spec.is_musl)
            if obstacle is None and rust and target not in RUST_TRIPLES:
                obstacle = f"is Rust, which the zig backend builds for {', '.join(RUST_TRIPLES)} only"
            if obstacle:
                facts.refusals[target] = obstacle
        else:
            facts.refusals[target] = "the zig backend builds Linux targets only: use the cibuildwheel backend"
    if not facts.imports:
        raise RewheelError(
            f"{file.filename}: found no package or extension module to import; write [test] imports by hand"
        )
    return facts


# ------------------------------------------------------------------------------------------- writing


def pinned_natives(recipes_dir: Path) -> dict[str, NativeLibrary]:
    """Every [[native]] entry the existing recipes pin, by library name (the first recipe wins), then the
    ones rewheel ships pinned in resources/native-libraries.toml for libraries no recipe builds yet."""
    from importlib import resources

    found: dict[str, NativeLibrary] = {}
    if recipes_dir.is_dir():
        for path in sorted(recipes_dir.glob("*.toml")):
            for library in load_recipe(path).native:
                found.setdefault(library.name, library)
    shipped = (
        resources.files("pipeline").joinpath("resources/native-libraries.toml").read_text(encoding="utf-8")
    )
    for entry in toml.loads(shipped).get("native", []):
        library = NativeLibrary.model_validate(entry)
        found.setdefault(library.name, library)
    return found


def _native_table(library: NativeLibrary) -> tomlkit.items.Table:
    table = tomlkit.table()
    for key, value in library.model_dump(by_alias=True, exclude_none=True, mode="json").items():
        if value in ([], "") or (key == "build" and value == "autotools" and not library.configure_args):
            continue
        table[key] = value
    return table


def _source_table(facts: SdistFacts, project: str | None) -> tomlkit.items.Table:
    table = tomlkit.table()
    table["version"] = facts.version
    table["kind"] = "sdist"
    if project:
        table["project"] = project
    table["filename"] = facts.file.filename
    table["sha256"] = facts.file.sha256
    return table


def _array(values: list[str]) -> tomlkit.items.Array:
    array = tomlkit.array()
    array.extend(values)
    return array


def render_new(
    facts: SdistFacts, targets: list[str], pythons: list[str], natives: dict[str, NativeLibrary]
) -> tuple[tomlkit.TOMLDocument, list[str], list[str]]:
    """A new recipe document for `facts`, with the findings as comments for the reviewer."""
    name = canonicalize_name(facts.project)
    doc = tomlkit.document()
    doc.add(
        tomlkit.comment(
            f"{name} {facts.version}: written by `rewheel recipe new` from {facts.file.filename}."
        )
    )
    doc.add(tomlkit.comment("Review it, then commit it under recipes/."))
    doc.add(tomlkit.comment(f"Build backend: {facts.build_backend}."))
    if facts.rust_crates:
        doc.add(tomlkit.comment(f"Rust: {facts.rust_crates}."))
    for target, why in facts.refusals.items():
        doc.add(tomlkit.comment(f"zig backend refuses {target}: {why}"))
    unpinned = []
    for library, where in facts.natives.items():
        if library in natives:
            doc.add(tomlkit.comment(f"Native library {library} ({where}): pinned [[native]] entry included."))
        else:
            unpinned.append(library)
            doc.add(
                tomlkit.comment(
                    f"Native library {library} ({where}): no recipe pins it yet; add a [[native]] entry "
                    "(name, version, filename, sha256, debian-source or url) or the build uses what it finds."
                )
            )
    doc.add(tomlkit.nl())
    doc["name"] = name
    if facts.summary:
        doc["description"] = facts.summary
    doc["targets"] = _array(targets)
    doc["python"] = _array(pythons)
    sources = tomlkit.aot()
    sources.append(_source_table(facts, facts.project if facts.project != name else None))
    doc["source"] = sources
    pinned = [natives[lib] for lib in facts.natives if lib in natives]
    if pinned:
        tables = tomlkit.aot()
        for pinned_library in pinned:
            tables.append(_native_table(pinned_library))
        doc["native"] = tables
    test = tomlkit.table()
    test["imports"] = _array(facts.imports)
    doc["test"] = test
    return doc, [lib.name for lib in pinned], unpinned


def add_source(existing: Path, facts: SdistFacts, targets: list[str], pythons: list[str]) -> str:
    """The existing recipe's text with another [[source]] when it lacks the version, and any missing targets
    and Pythons; its comments and layout are kept."""
    recipe = load_recipe(existing)
    doc = tomlkit.parse(existing.read_text(encoding="utf-8"))
    for source in recipe.source:
        if source.version == facts.version and source.kind == "sdist" and source.sha256 != facts.file.sha256:
            raise RewheelError(
                f"{existing}: [[source]] {facts.version} pins sha256 {source.sha256}, but the index's "
                f"{facts.file.filename} has {facts.file.sha256}"
            )
    if not any(s.version == facts.version for s in recipe.source):
        projects = {s.project for s in recipe.source if s.project}
        project = sorted(projects)[0] if projects else None
        doc["source"].append(_source_table(facts, project))
    for target in targets:
        if target not in recipe.targets:
            doc["targets"].append(target)
    if "python" in doc:
        for python in pythons:
            if python not in recipe.python:
                doc["python"].append(python)
    elif any(p not in recipe.python for p in pythons):
        doc["python"] = _array(sorted({*recipe.python, *pythons}))
    return tomlkit.dumps(doc)


def write_recipe(
    requirement: str,
    *,
    targets: list[str] | None = None,
    pythons: list[str] | None = None,
    output: Path | None = None,
    recipes_dir: Path | None = None,
) -> RecipeWritten:
    """Write (or extend) the recipe for NAME==VERSION into `output` (default: the recipes folder)."""
    from pipeline.gaps import recipes_by_name
    from pipeline.paths import project_root

    name, version = parse_requirement(requirement)
    targets = list(targets or DEFAULT_TARGETS)
    pythons = [check_python(p) for p in (pythons or ["3.11"])]
    for target in targets:
        get_target(target)
    recipes_dir = recipes_dir or project_root() / "recipes"
    output = output or recipes_dir
    existing = recipes_by_name(recipes_dir).get(canonicalize_name(name))
    # A recipe already written into output (e.g. by an earlier `build -r`) is extended, not replaced.
    written_before = output / f"{canonicalize_name(name)}.toml"
    if written_before.is_file() and written_before != existing:
        existing = written_before
    facts = read_sdist(name, version, targets, pythons[0])
    output.mkdir(parents=True, exist_ok=True)
    if existing is not None:
        recipe = load_recipe(existing)
        text = add_source(existing, facts, targets, pythons)
        destination = output / existing.name
        parse_recipe(text, destination)  # what is written must load
        changed = text != existing.read_text(encoding="utf-8")
        destination.write_text(text, encoding="utf-8")
        natives = [n.name for n in recipe.native]
        return RecipeWritten(destination, False, facts, changed=changed, natives_pinned=natives)
    doc, pinned, unpinned = render_new(facts, targets, pythons, pinned_natives(recipes_dir))
    text = tomlkit.dumps(doc)
    destination = output / f"{canonicalize_name(name)}.toml"
    parse_recipe(text, destination)
    destination.write_text(text, encoding="utf-8")
    return RecipeWritten(destination, True, facts, natives_pinned=pinned, natives_unpinned=unpinned)
