"""Write a recipe for NAME==VERSION from its sdist: the `recipe new` stage.

What the recipe pins comes from the index and the sdist itself:
- the sdist's file name and sha256, as the index lists them (through uv's resolver, see gaps.py), and the file
  is downloaded and checked against that hash before it is read;
- the build backend ([build-system] of pyproject.toml, setuptools' legacy backend without one) and what the zig
  backend would refuse per target (ZigBackend.source_obstacle, the zig backend's own check);
- native C libraries it includes or links (ffi.h / -lffi, yaml.h / -lyaml, zlib.h / -lz, ...): a library some
  recipe already builds for the target gets that recipe's pinned [[native]] entry; one no recipe pins is named
  in a comment, so the reviewer knows what to add.

The [test] comes from what the build actually makes: the draft recipe is built once with the zig backend for
the first target and Python (a probe build, cached like any job under <cache>/recipe-new/), and the wheel's
packages and extension modules are listed (never another platform's modules, which a scan of the sources
would list) and imported on the target. An import that needs another distribution ("No module named
'ruamel.yaml.error'") gets that distribution's wheel, pinned by hash, as a [test] requires line. When this
cannot finish (no probe build, a module that does not import), the recipe is still written, with a marked
[test] to complete and the reason in a comment, and `needs_review` says so (`recipe new` exits 4).

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
from pipeline.errors import RewheelError
from pipeline.fetch import Pin, fetch
from pipeline.gaps import IndexFile, check_python, index_sdist, resolve
from pipeline.log import log
from pipeline.recipe import NativeLibrary, load_recipe, parse_recipe
from pipeline.requirements import RequirementsSet
from pipeline.source_inspect import SourceListing, list_source, needs_rust
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
    def scanned_imports(self) -> list[str]:
        """What a scan of the sources suggests (no build): a guess, shown to the reviewer."""
        return [*self.packages, *(e for e in self.extensions if e not in self.packages)]


@dataclass
class ProbedTest:
    """The [test] the probe build found: imports that import on the target, what they need, what is left."""

    imports: list[str] = field(default_factory=list)
    requires: list[str] = field(default_factory=list)
    missing: str = ""  # one line for the reviewer; empty when the test is complete
    wheel: str = ""
    note: str = ""  # e.g. "not imported: this machine cannot host the target"

    @property
    def complete(self) -> bool:
        return not self.missing and bool(self.imports)


@dataclass
class RecipeWritten:
    path: Path
    created: bool  # False: an existing recipe was extended (or already had everything)
    facts: SdistFacts
    changed: bool = True  # False: the existing recipe already listed the version, targets and Pythons
    natives_pinned: list[str] = field(default_factory=list)
    natives_unpinned: list[str] = field(default_factory=list)
    test: ProbedTest | None = None  # None: an existing recipe's own [test] was kept

    @property
    def needs_review(self) -> str:
        """One line saying what the reviewer must complete; empty when the recipe is complete."""
        if self.test is None or self.test.complete:
            return ""
        return " ".join((self.test.missing or "no module to import was found").split())

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
            "imports": self.test.imports if self.test else [],
            "requires": self.test.requires if self.test else [],
            "probe_wheel": self.test.wheel if self.test else "",
            "needs_review": self.needs_review,
            "natives_pinned": self.natives_pinned,
            "natives_unpinned": self.natives_unpinned,
            "refused": self.facts.refusals,
            "rust_crates": self.facts.rust_crates,
        }


# ------------------------------------------------------------------------------------------- the sdist


_PROJECT_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)  # PEP 508 names


def parse_requirement(text: str) -> tuple[str, str]:
    """NAME==VERSION, both checked (a PEP 508 name, a PEP 440 version): either ends up in a file handed to
    the resolver, so a newline or option text in them must never get that far."""
    from packaging.version import InvalidVersion, Version

    name, sep, version = text.partition("==")
    name, version = name.strip(), version.strip()
    if not sep or not _PROJECT_NAME.match(name):
        raise RewheelError(f"{text[:200]!r}: give an exact pin, NAME==VERSION")
    try:
        Version(version)
    except InvalidVersion:
        raise RewheelError(
            f"{text[:200]!r}: give an exact pin, NAME==VERSION (VERSION as PEP 440 spells one)"
        ) from None
    return name, version


def find_sdist(name: str, version: str, target: str, python: str) -> IndexFile:
    """The sdist of NAME==VERSION as the configured index lists it (name, URL, sha256)."""
    pin = RequirementsSet.from_pins([(name, version)], source=f"{name}=={version}")
    packages = resolve(pin, get_target(target), python, no_deps=True)
    for package in packages:
        if canonicalize_name(str(package["name"])) == canonicalize_name(name) and not package.get("sdist"):
            # uv lists no sdist under --no-build (gaps.resolve never builds): the index's listing has it.
            found = index_sdist(name, str(package.get("version", version)))
            if found is not None:
                return found
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
    path = fetch(Pin(filename=file.filename, sha256=file.sha256, url=file.url))
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
    from pipeline.builders.backends.zig import ZigBackend

    zig = ZigBackend()
    if needs_rust(listing):
        facts.rust_crates = zig.crates_finding(listing)
    for target in targets:
        spec = get_target(target)
        if spec.is_linux:
            obstacle = zig.source_obstacle(listing, target)
            if obstacle:
                facts.refusals[target] = obstacle
        else:
            facts.refusals[target] = "the zig backend builds Linux targets only: use the cibuildwheel backend"
    return facts


# ------------------------------------------------------------------------------------------- the probe build

_NO_MODULE = re.compile(r"No module named '([\w.]+)'")
_MAX_REQUIRES = 3  # distributions a probe adds to [test] requires before it asks the reviewer instead


def wheel_modules(wheel: Path) -> list[str]:
    """The wheel's packages and extension modules, as smoke lists them, plus the first package below namespace
    folders (ruamel/yaml/clib/__init__.py -> ruamel.yaml.clib), which that listing leaves out."""
    from pipeline.smoke import modules_to_import

    with zipfile.ZipFile(wheel) as archive:
        members = [n for n in archive.namelist() if not n.endswith("/")]
    names = []
    for member in members:
        parts = PurePosixPath(member).parts
        if parts[0].endswith(".data") and len(parts) > 2 and parts[1] in ("purelib", "platlib"):
            names.append("/".join(parts[2:]))  # installed beside the packages
        elif not parts[0].endswith((".data", ".dist-info")):
            names.append(member)
    modules = modules_to_import(names)
    packages = {PurePosixPath(n).parent for n in names if PurePosixPath(n).name == "__init__.py"}
    for folder in sorted(packages, key=lambda f: (len(f.parts), str(f))):
        below_namespace = len(folder.parts) > 1 and not any(parent in packages for parent in folder.parents)
        if below_namespace and all(part.isidentifier() for part in folder.parts):
            dotted = ".".join(folder.parts)
            if dotted not in modules:
                modules.append(dotted)
    return modules


def distribution_candidates(module: str, wheel: Path) -> list[str]:
    """Distributions that may provide a missing top-level or dotted `module`, best guess first: the wheel's own
    Requires-Dist names that start like it, the wheel's own dotted parents (ruamel.yaml.clib's extension
    imports ruamel.yaml: "No module named 'ruamel'"), then the module's first one or two dotted parts."""
    from email.parser import Parser

    with zipfile.ZipFile(wheel) as archive:
        metadata_name = next((n for n in archive.namelist() if n.endswith(".dist-info/METADATA")), None)
        text = archive.read(metadata_name).decode("utf-8", errors="replace") if metadata_name else ""
    metadata = Parser().parsestr(text)
    head = module.split(".")[0].lower()
    candidates = []
    for requirement in metadata.get_all("Requires-Dist") or []:
        name = re.split(r"[\s;<>=!~\[(]", requirement.strip(), maxsplit=1)[0]
        if name.lower().replace("-", ".").replace("_", ".").startswith(head):
            candidates.append(name)
    own = str(metadata.get("Name", ""))
    parts = own.split(".")
    candidates += [".".join(parts[:end]) for end in range(len(parts) - 1, 0, -1) if parts[0].lower() == head]
    dotted = module.split(".")
    candidates += [".".join(dotted[:end]) for end in range(min(len(dotted), 2), 0, -1)]
    unique: list[str] = []
    for name in candidates:
        if canonicalize_name(name) not in {canonicalize_name(u) for u in [own, *unique]}:
            unique.append(name)
    return unique


def requirement_for_module(module: str, wheel: Path, target: str, python: str) -> str | None:
    """A [test] requires line (pinned by hash) for the distribution that provides `module`: the first of
    distribution_candidates the index has, with a wheel that fits the target."""
    from pipeline.gaps import PURE, UPSTREAM_WHEEL, classify, target_tags

    spec = get_target(target)
    for name in distribution_candidates(module, wheel)[:3]:
        with tempfile.TemporaryDirectory(prefix="rewheel-recipe-") as tmp:
            requirement = Path(tmp) / "requirement.txt"
            requirement.write_text(f"{name}\n", encoding="utf-8")
            try:
                packages = resolve(requirement, spec, python, no_deps=True)
            except RewheelError:
                continue  # no distribution of that name
        for package in packages:
            gap = classify(package, target_tags(spec, python))
            if gap.status in (PURE, UPSTREAM_WHEEL) and gap.file is not None and len(gap.file.sha256) == 64:
                return f"{gap.name}=={gap.version} --hash=sha256:{gap.file.sha256}"
    return None


def check_imports(wheel: Path, modules: list[str], target: str, python: str) -> ProbedTest:
    """Import `modules` from the probe wheel on the target (smoke); a module another distribution must provide
    gets that distribution as a requirement, and the imports are tried again."""
    from pipeline.smoke import CANNOT_HOST, smoke_wheel

    if not modules:
        return ProbedTest(missing=f"{wheel.name} holds no package or extension module to import")
    requires: list[str] = []
    asked: set[str] = set()
    while True:
        try:
            result = smoke_wheel(wheel, target, imports=modules, requires=requires)
        except RewheelError as exc:
            return ProbedTest(list(modules), requires, missing=f"the imports could not be tried: {exc}")
        if result.status == CANNOT_HOST:
            note = f"listed from the built wheel; not imported here: {result.message}"
            return ProbedTest(list(modules), requires, note=note)
        failed = {str(f.get("module")): str(f.get("error", "")) for f in result.failures}
        if not failed:
            return ProbedTest(list(modules), requires, note=f"imported on {result.runtime}")
        needed = next((m.group(1) for e in failed.values() if (m := _NO_MODULE.search(e))), None)
        if needed is None or needed in asked or len(requires) >= _MAX_REQUIRES:
            break
        asked.add(needed)
        requirement = requirement_for_module(needed, wheel, target, python)
        if requirement is None:
            break
        log.say(f"recipe: {needed} comes from {requirement.split()[0]}: added to [test] requires")
        requires.append(requirement)
    module, error = next(iter(failed.items()))
    imported = [m for m in modules if m not in failed]
    return ProbedTest(imported, requires, missing=f"{module} does not import on {target}: {error}")


def probe_test(recipe_path: Path, target: str, python: str) -> ProbedTest:
    """Build the draft recipe once with the zig backend for `target` / `python` and find its [test] from the
    wheel. The probe's wheelhouse is <cache>/recipe-new/<target>: a second `recipe new` finds it up to date."""
    from pipeline.builders.orchestrator import run_jobs
    from pipeline.paths import cache_root
    from pipeline.plan import ANY_PYTHON, plan

    jobs = [j for j in plan([load_recipe(recipe_path)], [target]) if j.python in (python, ANY_PYTHON)]
    if not jobs:
        return ProbedTest(missing=f"the recipe plans no job for {target} / Python {python} to build")
    log.say(f"recipe: probe build of {jobs[0].id} (zig backend) to find its modules")
    summary = run_jobs(
        jobs[:1],
        backend="zig",
        wheelhouse=cache_root() / "recipe-new" / target,
        smoke=False,
    )
    outcome = summary.outcomes[0]
    if not outcome.wheels:
        message = outcome.message.removeprefix(f"{jobs[0].id}: ")
        return ProbedTest(missing=f"the probe build failed at {outcome.stage}: {message}")
    wheel = outcome.wheels[0]
    test = check_imports(wheel, wheel_modules(wheel), target, python)
    test.wheel = wheel.name
    return test


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
    facts: SdistFacts,
    targets: list[str],
    pythons: list[str],
    natives: dict[str, NativeLibrary],
    test_found: ProbedTest,
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
    if test_found.missing:
        doc.add(tomlkit.nl())
        doc.add(tomlkit.comment(f"TO COMPLETE: [test] below. {test_found.missing}"))
        if facts.scanned_imports:
            guess = ", ".join(facts.scanned_imports)
            doc.add(tomlkit.comment(f"A scan of the sdist (not a build) suggests: {guess}"))
    test = tomlkit.table()
    if test_found.wheel:
        how = f" ({test_found.note})" if test_found.note else ""
        test.add(tomlkit.comment(f"From the probe build's {test_found.wheel}{how}."))
    test["imports"] = _array(test_found.imports)
    if test_found.requires:
        test["requires"] = _array(test_found.requires)
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
    build: bool = True,
) -> RecipeWritten:
    """Write (or extend) the recipe for NAME==VERSION into `output` (default: the recipes folder).

    A new recipe's [test] comes from a probe build (`build`); without one, or when it cannot finish, the recipe
    is written all the same and RecipeWritten.needs_review says what to complete."""
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
        if changed or destination != existing:  # an unchanged recipe in place is not even rewritten
            destination.write_text(text, encoding="utf-8")
        natives = [n.name for n in recipe.native]
        return RecipeWritten(destination, False, facts, changed=changed, natives_pinned=natives)
    known_natives = pinned_natives(recipes_dir)
    destination = output / f"{canonicalize_name(name)}.toml"
    target, python = targets[0], pythons[0]
    if target in facts.refusals:
        why = f"the zig backend refuses {target} ({facts.refusals[target]}), so no probe build found the modules"
        test = ProbedTest(missing=why)
    elif not build:
        test = ProbedTest(missing="not built (--no-build), so no build showed which modules the wheel has")
    else:
        # The draft is written first: the probe builds from it, and it stays if the probe is interrupted.
        _write_new(
            render_new(
                facts, targets, pythons, known_natives, ProbedTest(missing="the probe build did not finish")
            )[0],
            destination,
        )
        test = probe_test(destination, target, python)
    doc, pinned, unpinned = render_new(facts, targets, pythons, known_natives, test)
    _write_new(doc, destination)
    return RecipeWritten(
        destination, True, facts, natives_pinned=pinned, natives_unpinned=unpinned, test=test
    )


def _write_new(doc: tomlkit.TOMLDocument, destination: Path) -> None:
    text = tomlkit.dumps(doc)
    parse_recipe(text, destination)  # what is written must load
    destination.write_text(text, encoding="utf-8")
