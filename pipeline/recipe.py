"""The recipe model: one TOML file per package under recipes/, typed and validated when loaded.

A recipe says where a package's source comes from (pinned by sha256), which patches to apply (each pinned
too), which targets and Pythons to build for, how to build and repair per target, and how to test the result.
Loading rejects bad input early with one line naming the file, the key and what was expected.

    name = "markupsafe"

    [[source]]
    version = "2.1.5"
    kind = "sdist"
    filename = "MarkupSafe-2.1.5.tar.gz"
    sha256 = "d283d37a..."

    targets = ["musllinux_1_2_x86_64", "musllinux_1_2_aarch64"]
    python = ["3.11", "3.12"]

    [test]
    imports = ["markupsafe._speedups"]
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline import toml
from pipeline.builders.backends import SourceBackendName
from pipeline.errors import RecipeError
from pipeline.util import sha256_file

SHA256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="lowercase hex sha256 of the file")]
PYTHON_VERSION = Annotated[
    str, Field(pattern=r"^3\.\d{1,2}$", description='a CPython version such as "3.11"')
]
MAX_RECIPE_BYTES = 1 << 20  # the largest real recipe is a few KiB
NAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")


def _kebab(name: str) -> str:
    return name.replace("_", "-")


class _Model(BaseModel):
    # Recipes are written by people: unknown keys are typos, never silently ignored.
    model_config = ConfigDict(extra="forbid", alias_generator=_kebab, populate_by_name=True, frozen=True)


class Source(_Model):
    """One pinned input: an sdist or a wheel, by URL or by PyPI name + version + file name."""

    version: str = Field(description="the package version this source provides")
    kind: Literal["sdist", "wheel"] = Field(
        description="sdist: built from source; wheel: patched and re-packed"
    )
    filename: str = Field(description="the exact file name (checked against the download)")
    sha256: SHA256
    url: str | None = Field(
        default=None, description="download URL; omit to fetch from the package index by name"
    )
    project: str | None = Field(
        default=None, description="name on the package index when it differs from the recipe name"
    )
    build_tag: str | None = Field(
        default=None,
        pattern=r"^\d[A-Za-z0-9_.]*$",
        description="wheel sources: the build tag of the re-packed wheel for the index (e.g. 1rewheel); "
        "raise it whenever the patches change, so pip prefers the newer file",
    )

    @field_validator("filename")
    @classmethod
    def _plain_filename(cls, value: str) -> str:
        if "/" in value or "\\" in value or value in (".", ".."):
            raise ValueError("must be a bare file name, not a path")
        return value

    @model_validator(mode="after")
    def _filename_matches_kind(self) -> Source:
        if self.kind == "wheel" and not self.filename.endswith(".whl"):
            raise ValueError(f"kind 'wheel' needs a .whl file name, got {self.filename!r}")
        if self.kind == "sdist" and not self.filename.endswith((".tar.gz", ".zip", ".tar.bz2", ".tgz")):
            raise ValueError(f"kind 'sdist' needs a .tar.gz or .zip file name, got {self.filename!r}")
        return self


class Patch(_Model):
    """A patch file under patches/<recipe name>/, pinned by sha256 and applied strictly (no fuzz)."""

    file: str = Field(description="path relative to patches/<recipe name>/")
    sha256: SHA256
    strip: int = Field(default=1, ge=0, le=5, description="leading path components to strip, as patch -p")
    stage: Literal["source", "wheel"] = Field(
        default="source", description="source: the unpacked sdist before building; wheel: the unpacked wheel"
    )
    versions: list[str] | None = Field(
        default=None, description="source versions this patch applies to; all when omitted"
    )
    targets: list[str] | None = Field(
        default=None, description="target names or patterns this patch applies to; all when omitted"
    )

    @field_validator("file")
    @classmethod
    def _inside_patch_dir(cls, value: str) -> str:
        parts = Path(value).parts
        if Path(value).is_absolute() or ".." in parts or not parts:
            raise ValueError("must be a relative path inside patches/<name>/")
        return value

    def applies_to(self, version: str, target: str) -> bool:
        if self.versions is not None and version not in self.versions:
            return False
        return self.targets is None or any(fnmatch.fnmatchcase(target, p) for p in self.targets)


class BuildOptions(_Model):
    """How to build; the same keys are allowed per target pattern under [build.target."<pattern>"]."""

    environment: dict[str, str] = Field(default_factory=dict, description="environment for the build")
    config_settings: dict[str, str | list[str]] = Field(
        default_factory=dict, description="PEP 517 config-settings passed to the build backend"
    )
    disable_features: list[str] = Field(
        default_factory=list, description="optional features the target lacks (see [features])"
    )
    before_all: list[str] = Field(default_factory=list, description="commands run once before building")
    before_build: list[str] = Field(default_factory=list, description="commands run before each build")
    build_requires: list[str] = Field(
        default_factory=list,
        description="requirements added to the sdist's build requirements (zig backend's build venv), e.g. a pin "
        "of the backend version the sdist was made for",
    )
    cibuildwheel: dict[str, Any] = Field(
        default_factory=dict, description="extra cibuildwheel options, as in [tool.cibuildwheel]"
    )
    strict_c: bool = Field(
        default=False,
        description="zig backend: keep clang's newer hard errors (int-conversion, "
        "incompatible-function-pointer-types, implicit-function-declaration, implicit-int) as errors; by "
        "default they are warnings, as in the GCC the manylinux2014 image has",
    )


class FeatureSwitch(_Model):
    """What disabling an optional feature means to the package's own build (its switches)."""

    description: str = ""
    config_settings: dict[str, str | list[str]] = Field(default_factory=dict)
    environment: dict[str, str] = Field(default_factory=dict)
    patches: list[str] = Field(
        default_factory=list, description="patch files (from [[patch]]) that compile the feature out"
    )
    lost: str = Field(default="", description="what users of the wheel lose; shown in build records")


class BackendBuild(BuildOptions):
    """Options one backend adds on top of the recipe's [build] (e.g. [build.backend.zig]): a zig cross build
    of a Windows target needs other switches than cibuildwheel's MSVC build of the same target."""

    target: dict[str, BuildOptions] = Field(
        default_factory=dict,
        description='per-target overrides for this backend, keyed by target name or pattern ("win_*")',
    )


def _merge_options(merged: dict[str, Any], override: BuildOptions) -> None:
    for key, value in override.model_dump(exclude_unset=True).items():
        if key == "target":
            continue
        if isinstance(value, dict):
            merged[key] = {**merged[key], **value}
        elif isinstance(value, list):
            merged[key] = [*merged[key], *value]
        else:
            merged[key] = value  # a switch (strict-c): the more specific section wins


class Build(BuildOptions):
    target: dict[str, BuildOptions] = Field(
        default_factory=dict,
        description='per-target overrides keyed by target name or pattern ("musllinux_*")',
    )
    backend: dict[SourceBackendName, BackendBuild] = Field(
        default_factory=dict,
        description='per-backend overrides ([build.backend.zig], [build.backend.zig.target."win_*"]), '
        "applied after the per-target ones when that backend builds",
    )

    def for_target(self, target: str, backend: str | None = None) -> BuildOptions:
        """Options for one target: the base, then every matching pattern in file order, then (when `backend`
        is given) that backend's base and matching patterns.

        Mappings merge (later keys win) and lists extend, so a family pattern and an exact name compose.
        """
        merged: dict[str, Any] = self.model_dump(exclude={"target", "backend"})
        for pattern, override in self.target.items():
            if fnmatch.fnmatchcase(target, pattern):
                _merge_options(merged, override)
        scoped = next((options for name, options in self.backend.items() if name == backend), None)
        if scoped is not None:
            _merge_options(merged, scoped)
            for pattern, override in scoped.target.items():
                if fnmatch.fnmatchcase(target, pattern):
                    _merge_options(merged, override)
        return BuildOptions(**merged)

    def target_patterns(self) -> list[str]:
        """Every target pattern the recipe's build options name (checked against the known targets)."""
        return [*self.target, *(p for section in self.backend.values() for p in section.target)]


class Auditwheel(_Model):
    exclude: list[str] = Field(default_factory=list, description="auditwheel repair --exclude SONAMEs")
    plat: str | None = Field(default=None, description="auditwheel --plat; defaults to the target's tag")


class Delvewheel(_Model):
    no_dll: list[str] = Field(default_factory=list, description="delvewheel --no-dll names")
    add_path: list[str] = Field(default_factory=list, description="delvewheel --add-path folders")
    exclude: list[str] = Field(default_factory=list, description="delvewheel --exclude names")


class Repair(_Model):
    auditwheel: Auditwheel = Field(default_factory=Auditwheel)
    delvewheel: Delvewheel = Field(default_factory=Delvewheel)


class Test(_Model):
    imports: list[str] = Field(default_factory=list, description="modules to import on the target")
    command: str | None = Field(default=None, description="a test command run with the target's Python")
    requires: list[str] = Field(
        default_factory=list,
        description="wheels the imports need on the target, as pip requirement lines pinned with --hash "
        "(e.g. numpy); fetched for the target's platform and unpacked next to the wheel",
    )


class NativeLibrary(_Model):
    """A C library built for the target before the package (zig backend), from a pinned archive."""

    name: str
    version: str
    filename: str
    sha256: SHA256
    url: str | None = None
    project: str | None = Field(
        default=None,
        description="fetch from the package index as this project's sdist (libraries it carries)",
    )
    debian_source: str | None = Field(
        default=None, description="fetch as the orig tarball of this Debian source package"
    )
    build: str = Field(default="autotools", description="autotools | cmake | make | a recipe-specific script")
    configure_args: list[str] = Field(default_factory=list)
    linkage: Literal["static", "shared"] | None = Field(
        default=None,
        description="static: an archive linked into the extension; shared: a DLL that delvewheel bundles "
        "(Windows targets only). Default: static, except autotools libraries on Windows, which are DLLs. "
        "lcms2 must be static on Windows (its DLL export macros are MSVC-only)",
    )


class CrateSource(_Model):
    """Rust crates for a source that does not vendor its own, pinned by sha256 (zig backend, zig/rust.py):
    a Debian `librust-*-dev` package (its crate under usr/share/cargo/registry/) or a `cargo vendor`
    tarball. They become one local directory source that replaces the crates registry for the build."""

    kind: Literal["deb", "vendor-tarball"]
    filename: str = Field(description="the exact file name (checked against the download)")
    sha256: SHA256
    package: str | None = Field(
        default=None,
        description="deb: the Debian binary package (apt-get download); from a suite other than bookworm as "
        "NAME:arm64 (rewheel's private lists for other suites carry arm64; a crate's files are the same on "
        "every architecture)",
    )
    version: str | None = Field(default=None, description="deb: the package's Debian version")
    suite: str = Field(default="bookworm", description="deb: the Debian suite it comes from")
    url: str | None = Field(default=None, description="vendor-tarball: download URL")
    versions: list[str] | None = Field(
        default=None, description="source versions these crates are for; all when omitted"
    )

    @model_validator(mode="after")
    def _where_from(self) -> CrateSource:
        if self.kind == "deb" and not (self.package and self.version):
            raise ValueError(f"crates {self.filename}: a deb needs package and version")
        if self.kind == "vendor-tarball" and not self.url:
            raise ValueError(f"crates {self.filename}: a vendor-tarball needs a url")
        return self

    def applies_to(self, version: str) -> bool:
        return self.versions is None or version in self.versions


class Recipe(_Model):
    name: str = Field(description="the package name (normalised names compare equal)")
    description: str = ""
    source: list[Source] = Field(min_length=1, description="one entry per version built")
    patch: list[Patch] = Field(default_factory=list)
    crates: list[CrateSource] = Field(
        default_factory=list, description="Rust crates, pinned, for sources that do not vendor theirs"
    )
    targets: list[str] = Field(min_length=1, description="target names from `rewheel targets`")
    python: list[PYTHON_VERSION] = Field(
        default_factory=lambda: ["3.11"], description="CPython versions to build for (wheel sources: ignored)"
    )
    exclude: list[str] = Field(
        default_factory=list, description='jobs to skip, as "<target pattern>" or "<target pattern>:<python>"'
    )
    depends: list[str] = Field(default_factory=list, description="recipes that must be built first")
    features: dict[str, FeatureSwitch] = Field(default_factory=dict)
    build: Build = Field(default_factory=Build)
    native: list[NativeLibrary] = Field(default_factory=list)
    repair: Repair = Field(default_factory=Repair)
    test: Test = Field(default_factory=Test)

    # Set by the loader, not by the file.
    path: Path | None = Field(default=None, exclude=True)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError("must be a valid distribution name (letters, digits, '.', '-', '_')")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> Recipe:
        versions = [s.version for s in self.source]
        if len(set(versions)) != len(versions):
            raise ValueError(f"source versions must be unique, got {versions}")
        files = [p.file for p in self.patch]
        if len(set(files)) != len(files):
            raise ValueError("a patch file is listed twice")
        for patch in self.patch:
            for v in patch.versions or ():
                if v not in versions:
                    raise ValueError(f"patch {patch.file} names version {v!r}, which no [[source]] provides")
        for crate in self.crates:
            for v in crate.versions or ():
                if v not in versions:
                    raise ValueError(
                        f"crates {crate.filename} names version {v!r}, which no [[source]] provides"
                    )
        scoped = [o for section in self.build.backend.values() for o in (section, *section.target.values())]
        for options in [self.build, *self.build.target.values(), *scoped]:
            for disabled in options.disable_features:
                if disabled not in self.features:
                    raise ValueError(f"disable-features names {disabled!r}, which [features] does not define")
        for name, switch in self.features.items():
            for patch_file in switch.patches:
                if patch_file not in files:
                    raise ValueError(
                        f"feature {name!r} names patch {patch_file!r}, which [[patch]] does not list"
                    )
        return self

    @property
    def normalized_name(self) -> str:
        return re.sub(r"[-_.]+", "-", self.name).lower()

    @property
    def patch_dir(self) -> Path:
        assert self.path is not None, "recipe was not loaded from a file"
        return self.path.parent.parent / "patches" / self.name

    def source_for(self, version: str) -> Source:
        for source in self.source:
            if source.version == version:
                return source
        raise RecipeError(f"{self.path}: no [[source]] with version {version!r}")

    def patches_for(self, version: str, target: str, stage: str) -> list[Patch]:
        return [p for p in self.patch if p.stage == stage and p.applies_to(version, target)]

    def is_excluded(self, target: str, python: str) -> bool:
        for rule in self.exclude:
            pattern, _, py = rule.partition(":")
            if fnmatch.fnmatchcase(target, pattern) and (not py or py == python):
                return True
        return False


def _describe_error(error: Any) -> str:
    location = ".".join(str(part) for part in error["loc"] if part != "__root__")
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if error["type"] == "extra_forbidden":
        return f"unknown key {location!r}"
    if error["type"] == "missing":
        return f"key {location!r} is required"
    got = error.get("input")
    shown = f" (got {got!r})" if not isinstance(got, dict | list) and got is not None else ""
    return f"key {location!r}: {message}{shown}" if location else message


def parse_recipe(text: str, path: Path) -> Recipe:
    """Validate recipe text; errors name the file, the first bad key and what was expected."""
    try:
        data = toml.loads(text)
    except toml.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise RecipeError(f"{path}: not valid TOML: nested too deeply") from None
    try:
        recipe = Recipe.model_validate({**data, "path": path})
    except RecursionError:
        raise RecipeError(f"{path}: tables or arrays nested too deeply for a recipe") from None
    except ValidationError as exc:
        errors = exc.errors()
        extra = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise RecipeError(f"{path}: {_describe_error(errors[0])}{extra}") from None
    if path.stem != recipe.name and path.stem != recipe.normalized_name:
        raise RecipeError(f"{path}: file name must match the recipe name {recipe.name!r}")
    return recipe


def load_recipe(path: Path) -> Recipe:
    try:
        # A regular file of bounded size: a device (/dev/zero) or a fifo would be read forever.
        with path.open("rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise RecipeError(f"{path}: not a regular file")
            raw = handle.read(MAX_RECIPE_BYTES + 1)
        if len(raw) > MAX_RECIPE_BYTES:
            raise RecipeError(f"{path}: larger than {MAX_RECIPE_BYTES} bytes; not a recipe")
        text = raw.decode("utf-8")
    except OSError as exc:
        raise RecipeError(f"{path}: cannot read recipe: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise RecipeError(
            f"{path}: not UTF-8 text as TOML requires ({exc.reason} at byte {exc.start})"
        ) from None
    return parse_recipe(text, path)


def recipe_paths(paths: list[Path] | None = None) -> list[Path]:
    """Expand folders to their *.toml files; default: recipes/ of the project."""
    from pipeline.paths import project_root

    if not paths:
        paths = [project_root() / "recipes"]
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(path.glob("*.toml")))
        elif path.exists():
            found.append(path)
        else:
            raise RecipeError(f"{path}: no such recipe file or folder")
    return found


def load_recipes(paths: list[Path] | None = None) -> list[Recipe]:
    recipes = [load_recipe(p) for p in recipe_paths(paths)]
    seen: dict[str, Path | None] = {}
    for recipe in recipes:
        if recipe.normalized_name in seen:
            raise RecipeError(
                f"{recipe.path}: recipe {recipe.name!r} is also defined in {seen[recipe.normalized_name]}"
            )
        seen[recipe.normalized_name] = recipe.path
    return recipes


def patch_file_problem(recipe: Recipe, patch: Patch) -> str | None:
    """Why this patch file must not be applied (a link, outside patches/, missing, or not its sha256), or None."""
    file = recipe.patch_dir / patch.file
    if file.is_symlink() or not file.resolve().is_relative_to(recipe.patch_dir.resolve()):
        return f"{recipe.path}: patch {patch.file}: must be a file inside {recipe.patch_dir}, not a link"
    if not file.is_file():
        return f"{recipe.path}: patch {patch.file}: file {file} does not exist"
    actual = sha256_file(file)
    if actual != patch.sha256:
        return f"{recipe.path}: patch {patch.file}: sha256 mismatch: expected {patch.sha256}, got {actual}"
    return None


def check_patch_files(recipe: Recipe) -> list[str]:
    """Problems with the recipe's patch files on disk (links, missing, or not matching their sha256)."""
    return [problem for patch in recipe.patch if (problem := patch_file_problem(recipe, patch))]


def check_targets(recipe: Recipe) -> list[str]:
    from pipeline.targets import catalogue

    known = catalogue()
    problems = [
        f"{recipe.path}: key 'targets': unknown target {t!r}" for t in recipe.targets if t not in known
    ]
    for pattern in [*recipe.build.target_patterns(), *(r.partition(":")[0] for r in recipe.exclude)]:
        if not any(fnmatch.fnmatchcase(t, pattern) for t in known):
            problems.append(f"{recipe.path}: target pattern {pattern!r} matches no known target")
    for patch in recipe.patch:
        for pattern in patch.targets or ():
            if not any(fnmatch.fnmatchcase(t, pattern) for t in known):
                problems.append(
                    f"{recipe.path}: patch {patch.file}: target pattern {pattern!r} matches nothing"
                )
    return problems


def json_schema() -> dict[str, Any]:
    schema = Recipe.model_json_schema(by_alias=True)
    schema["properties"].pop("path", None)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "rewheel recipe"
    return schema
