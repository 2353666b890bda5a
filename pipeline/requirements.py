"""Requirements files read as pip reads them, and held to pip's hash-checking mode.

The lines are parsed by pip-requirements-parser: nexB's extraction of pip's own requirements-file parser
(continuation lines, comments, per-line options through pip's own option definitions), so a line means to
rewheel what it means to pip. It was chosen over requirements-parser, which skips `--hash` lines, has no
continuation lines, opens `-r` files itself and silently drops index options, and over importing
pip._internal, which pip documents as no API. It is given one file at a time (include_nested=False): rewheel
opens every file itself, so includes are checked before a byte of them is read.

What a file may hold (anything else is one line naming FILE:LINE and exit 2, never the line's text: an
include may be a file of secrets, and its content is never echoed):
- requirements by name (extras, specifiers, markers), each with optional `--hash=sha256:...`;
- `-r` / `-c` includes of regular files, each at most MAX_FILE_BYTES, at most MAX_DEPTH deep and MAX_FILES in
  all (not /dev/zero, /proc files or FIFOs);
- `--require-hashes`.
Refused: index options (`--index-url`, `-i`, `--extra-index-url`, `--find-links`, `-f`, `--trusted-host`,
`--no-index`: the index is rewheel's, see upstream_index.py), other pip options, URL, path, `-e` and VCS
requirements (rewheel takes every file from its own index, by name and version, hashed), and `${VAR}`
(pip would expand it, and uv would expand it in the file rewheel hands it).

Hash-checking mode, as pip's: once `--require-hashes` is given or one requirement has a hash, every
requirement needs one and must be pinned with `==` (or `===`); the resolver's choice is then checked in gaps.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name

from pipeline.errors import RewheelError

MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 8
MAX_FILES = 64
MAX_REQUIREMENTS = 10_000
_ENV_VARIABLE = re.compile(r"\$\{[A-Za-z0-9_]+\}")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_INDEX_OPTIONS = {"index_url", "extra_index_urls", "find_links", "trusted_hosts", "no_index"}
INDEX_HINT = "set the index with rewheel's --index-url option or REWHEEL_INDEX_URL"


class RequirementsError(RewheelError):
    """A requirements file rewheel refuses (bad input: exit 2)."""


@dataclass(frozen=True)
class Line:
    requirement: Requirement
    hashes: frozenset[str]  # sha256 hex digests the file allows
    where: str  # FILE:LINE

    @property
    def name(self) -> NormalizedName:
        return canonicalize_name(self.requirement.name)

    @property
    def pinned_version(self) -> str | None:
        specifiers = list(self.requirement.specifier)
        if (
            len(specifiers) == 1
            and specifiers[0].operator in ("==", "===")
            and "*" not in specifiers[0].version
        ):
            return specifiers[0].version
        return None


@dataclass
class RequirementsSet:
    """The validated content of a requirements file and its includes."""

    source: str
    requirements: list[Line] = field(default_factory=list)
    constraints: list[Line] = field(default_factory=list)
    require_hashes: bool = False

    @property
    def hash_checking(self) -> bool:
        return self.require_hashes or any(line.hashes for line in self.requirements)

    def allowed_hashes(self, name: str) -> tuple[frozenset[str], str] | None:
        """The sha256 digests the file allows for `name` (requirement and constraint lines together, as pip
        intersects them), with where they were given; None when no line names it with a hash."""
        allowed: frozenset[str] | None = None
        where = ""
        for line in [*self.requirements, *self.constraints]:
            if line.name == canonicalize_name(name) and line.hashes:
                allowed = line.hashes if allowed is None else allowed & line.hashes
                where = where or line.where
        return None if allowed is None else (allowed, where)

    def lines_for(self, name: str) -> list[Line]:
        return [
            line for line in [*self.requirements, *self.constraints] if line.name == canonicalize_name(name)
        ]

    @classmethod
    def from_pins(cls, pins: list[tuple[str, str]], source: str = "<pins>") -> RequirementsSet:
        lines = []
        for name, version in pins:
            try:
                requirement = Requirement(f"{name}=={version}")
            except InvalidRequirement:
                raise RequirementsError(f"not a valid NAME==VERSION pin: {name!r} {version!r}") from None
            lines.append(Line(requirement, frozenset(), source))
        return cls(source, lines)

    def write(self, folder: Path, extra: Sequence[str] = ()) -> tuple[Path, Path]:
        """The requirements and constraints files rewheel hands the resolver: written from the validated
        lines (names, extras, specifiers, markers), never the user's file."""
        requirements = folder / "requirements.txt"
        constraints = folder / "constraints.txt"
        lines = dict.fromkeys([*(str(line.requirement) for line in self.requirements), *extra])
        requirements.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        constraint_lines = dict.fromkeys(str(line.requirement) for line in self.constraints)
        constraints.write_text("".join(f"{line}\n" for line in constraint_lines), encoding="utf-8")
        return requirements, constraints


# ------------------------------------------------------------------------------------------- reading


def read_bounded(path: Path, what: str) -> str:
    """The text of a regular file of at most MAX_FILE_BYTES; refused in one line otherwise, before reading
    more than that (a FIFO, /dev/zero or a /proc file is refused on its type, without reading)."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; the type check below then refuses it.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise RequirementsError(f"{what}: no such requirements file") from None
    except OSError as exc:
        raise RequirementsError(f"{what}: cannot open it: {exc.strerror}") from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise RequirementsError(f"{what}: not a regular file; requirements files must be regular files")
        if info.st_size > MAX_FILE_BYTES:
            raise RequirementsError(f"{what}: larger than {MAX_FILE_BYTES} bytes; refusing it")
        with os.fdopen(descriptor, "rb", closefd=False) as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    finally:
        os.close(descriptor)
    if info.st_size == 0 and data:
        # /proc and /sys files say they are regular and empty, then yield content (environ, cmdline...).
        raise RequirementsError(f"{what}: not a regular file; requirements files must be regular files")
    if len(data) > MAX_FILE_BYTES:
        raise RequirementsError(f"{what}: larger than {MAX_FILE_BYTES} bytes; refusing it")
    if b"\0" in data:
        raise RequirementsError(f"{what}: not a text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RequirementsError(f"{what}: not UTF-8 text") from None


def _parse_text(text: str) -> object:
    from pip_requirements_parser import RequirementsFile

    # The parser takes a file name; a private copy of the bytes already read and checked is what it opens.
    with tempfile.TemporaryDirectory(prefix="rewheel-req-") as tmp:
        copy = Path(tmp) / "requirements.txt"
        copy.write_text(text, encoding="utf-8")
        return RequirementsFile.from_file(str(copy), include_nested=False)


def _hashes(options: list[str], where: str) -> frozenset[str]:
    found = set()
    for option in options:
        algorithm, _, digest = option.partition(":")
        if algorithm.lower() != "sha256":
            raise RequirementsError(f"{where}: only sha256 hashes are supported (--hash=sha256:<64 hex>)")
        digest = digest.lower()
        if not _SHA256.match(digest):
            raise RequirementsError(f"{where}: a --hash is not sha256:<64 hex digits>")
        found.add(digest)
    return frozenset(found)


class _Reader:
    def __init__(self) -> None:
        self.files = 0
        self.result: RequirementsSet | None = None

    def read(self, path: Path, shown: str, *, constraint: bool, chain: tuple[Path, ...]) -> None:
        assert self.result is not None
        self.files += 1
        if self.files > MAX_FILES:
            raise RequirementsError(
                f"{shown}: more than {MAX_FILES} requirements files in one set of includes"
            )
        text = read_bounded(path, shown)
        parsed = _parse_text(text)
        for invalid in parsed.invalid_lines:  # type: ignore[attr-defined]
            raise RequirementsError(f"{shown}:{invalid.line_number}: not a requirement or option pip accepts")
        for option_line in parsed.options:  # type: ignore[attr-defined]
            where = f"{shown}:{option_line.line_number}"
            if _ENV_VARIABLE.search(option_line.line or ""):
                raise RequirementsError(f"{where}: ${{VARIABLE}} is not expanded by rewheel; write the value")
            for option, value in option_line.options.items():
                if option in _INDEX_OPTIONS:
                    raise RequirementsError(
                        f"{where}: index options in a requirements file are refused; {INDEX_HINT}"
                    )
                if option == "require_hashes":
                    self.result.require_hashes = True
                elif option in ("requirements", "constraints"):
                    for include in value:
                        self.include(path, where, include, constraint=option == "constraints", chain=chain)
                else:
                    raise RequirementsError(
                        f"{where}: the option --{option.replace('_', '-')} is not supported in a requirements "
                        "file rewheel reads"
                    )
        for entry in parsed.requirements:  # type: ignore[attr-defined]
            where = f"{shown}:{entry.line_number}"
            if _ENV_VARIABLE.search(entry.line or ""):
                raise RequirementsError(f"{where}: ${{VARIABLE}} is not expanded by rewheel; write the value")
            if entry.is_editable:
                raise RequirementsError(f"{where}: editable (-e) requirements are refused; {_BY_NAME}")
            if entry.is_vcs_url:
                raise RequirementsError(f"{where}: version-control requirements are refused; {_BY_NAME}")
            if entry.link is not None or entry.is_url or entry.is_local_path or entry.req is None:
                raise RequirementsError(f"{where}: URL and path requirements are refused; {_BY_NAME}")
            try:
                # pip's parser keeps the marker apart from the requirement, as pip does.
                marker = f"; {entry.marker}" if entry.marker is not None else ""
                requirement = Requirement(f"{entry.req}{marker}")
            except InvalidRequirement:
                raise RequirementsError(f"{where}: not a requirement pip accepts") from None
            line = Line(requirement, _hashes(list(entry.hash_options or []), where), where)
            (self.result.constraints if constraint else self.result.requirements).append(line)
            if len(self.result.requirements) + len(self.result.constraints) > MAX_REQUIREMENTS:
                raise RequirementsError(f"{shown}: more than {MAX_REQUIREMENTS} requirements")

    def include(
        self, parent: Path, where: str, include: str, *, constraint: bool, chain: tuple[Path, ...]
    ) -> None:
        if len(chain) >= MAX_DEPTH:
            raise RequirementsError(f"{where}: includes nested more than {MAX_DEPTH} deep")
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", include):
            raise RequirementsError(f"{where}: an include must be a local file, not a URL")
        path = Path(include) if os.path.isabs(include) else parent.parent / include
        real = Path(os.path.realpath(path))
        if real in chain:
            raise RequirementsError(f"{where}: the include includes itself")
        self.read(path, str(path), constraint=constraint, chain=(*chain, real))


_BY_NAME = "require the project by name and version (with --hash) from the index rewheel uses"


def read_requirements(path: Path) -> RequirementsSet:
    """Read and check a requirements file and its includes; RequirementsError (exit 2) on anything refused."""
    reader = _Reader()
    reader.result = RequirementsSet(str(path))
    reader.read(path, str(path), constraint=False, chain=(Path(os.path.realpath(path)),))
    result = reader.result
    if not result.requirements:
        raise RequirementsError(f"{path}: no requirements in it")
    if result.hash_checking:
        for line in result.requirements:
            if not line.hashes and not result.allowed_hashes(line.name):
                raise RequirementsError(
                    f"{line.where}: no --hash; in hash-checking mode (one requirement has a hash, or "
                    "--require-hashes) every requirement needs one, as in pip"
                )
            if line.pinned_version is None:
                raise RequirementsError(
                    f"{line.where}: in hash-checking mode every requirement must be pinned with ==, as in pip"
                )
    return result
