"""Strict unified-diff application, in Python, for source trees (sdists) and unpacked wheels.

Strict means: every context and removed line must match the file exactly (no fuzz, no whitespace
leniency). The one tolerance is the line *offset*: like patch(1), a hunk whose exact text is found up to
MAX_OFFSET lines away from the line its header names still applies there (the nearest match wins), because
an unrelated change earlier in a file moves line numbers without making the patch wrong. A hunk that does
not match anywhere in that window raises PatchError naming the patch file, the hunk and the target file.

Application is all-or-nothing per patch: every file is computed in memory first and written only when
every hunk of every file applied, so a failed patch never leaves a half-patched tree behind.

Text is handled as bytes, so CRLF files and non-UTF-8 content are patched byte for byte.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pipeline.errors import RewheelError
from pipeline.recipe import Recipe, patch_file_problem

# How far (in lines) a hunk may have moved from where its header says. Exact text is still required.
MAX_OFFSET = 100

_HUNK_HEADER = re.compile(rb"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_DEV_NULL = "/dev/null"


class PatchError(RewheelError):
    """A patch file is malformed, pinned wrongly, or does not apply exactly."""


@dataclass
class Hunk:
    number: int  # 1-based within its file, as patch(1) counts
    header: str  # "@@ -40,7 +40,9 @@"
    old_start: int
    old_lines: list[bytes] = field(default_factory=list)  # each with its line ending (or none at EOF)
    new_lines: list[bytes] = field(default_factory=list)


@dataclass
class FilePatch:
    old_path: str  # as written in the patch ("a/pip/x.py" or "/dev/null")
    new_path: str
    hunks: list[Hunk] = field(default_factory=list)
    # `diff -N` marks a missing side with the epoch as its time stamp instead of /dev/null.
    old_is_epoch: bool = False
    new_is_epoch: bool = False

    @property
    def creates(self) -> bool:
        if self.old_path == _DEV_NULL:
            return True
        return self.old_is_epoch and all(not h.old_lines for h in self.hunks)

    @property
    def deletes(self) -> bool:
        if self.new_path == _DEV_NULL:
            return True
        return self.new_is_epoch and all(not h.new_lines for h in self.hunks)


def _path_from_header(line: bytes, marker: bytes) -> tuple[str, bool]:
    """The file name of a ---/+++ line, and whether its time stamp is the epoch (diff -N's missing file)."""
    text = line[len(marker) :].rstrip(b"\r\n").decode("utf-8", errors="surrogateescape")
    # A tab separates the name from an optional timestamp (diff -u); git quotes names with odd characters.
    name, _, stamp = text.partition("\t")
    name = name.strip()
    if len(name) >= 2 and name.startswith('"') and name.endswith('"'):
        name = name[1:-1]
    return name, stamp.startswith(("1970-01-01 00:00:00", "1969-12-31"))


def parse_patch(data: bytes, patch_name: str) -> list[FilePatch]:
    """Parse a unified diff (plain `diff -u` or `git diff`). Text before the first `---` line is a free
    header (rewheel patches explain there why they exist) and is ignored, as patch(1) ignores it."""
    lines = data.splitlines(keepends=True)
    files: list[FilePatch] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(b"--- ") and i + 1 < len(lines) and lines[i + 1].startswith(b"+++ "):
            old_path, old_is_epoch = _path_from_header(line, b"--- ")
            new_path, new_is_epoch = _path_from_header(lines[i + 1], b"+++ ")
            current = FilePatch(old_path, new_path, old_is_epoch=old_is_epoch, new_is_epoch=new_is_epoch)
            files.append(current)
            i += 2
            while i < len(lines) and lines[i].startswith(b"@@"):
                i = _parse_hunk(lines, i, current, patch_name)
            if not current.hunks:
                raise PatchError(f"{patch_name}: no hunks for {current.new_path}")
            continue
        i += 1
    if not files:
        raise PatchError(f"{patch_name}: not a unified diff (no '---'/'+++' file headers found)")
    return files


def _parse_hunk(lines: list[bytes], i: int, current: FilePatch, patch_name: str) -> int:
    header_line = lines[i]
    match = _HUNK_HEADER.match(header_line)
    if not match:
        raise PatchError(
            f"{patch_name}: malformed hunk header {header_line.strip().decode(errors='replace')!r}"
        )
    old_start, old_count, _new_start, new_count = (
        int(match.group(1)),
        int(match.group(2) or 1),
        int(match.group(3)),
        int(match.group(4) or 1),
    )
    header = match.group(0).decode()
    hunk = Hunk(number=len(current.hunks) + 1, header=header, old_start=old_start)
    i += 1
    old_seen = new_seen = 0
    last: list[list[bytes]] = []  # the lists the previous line went to, for "\ No newline at end of file"
    while i < len(lines) and (old_seen < old_count or new_seen < new_count or lines[i].startswith(b"\\")):
        line = lines[i]
        tag, body = line[:1], line[1:]
        if line in (b"\n", b"\r\n"):
            # Some editors strip the single space of an empty context line; treat it as context.
            tag, body = b" ", line
        if tag == b" ":
            hunk.old_lines.append(body)
            hunk.new_lines.append(body)
            old_seen += 1
            new_seen += 1
            last = [hunk.old_lines, hunk.new_lines]
        elif tag == b"-":
            hunk.old_lines.append(body)
            old_seen += 1
            last = [hunk.old_lines]
        elif tag == b"+":
            hunk.new_lines.append(body)
            new_seen += 1
            last = [hunk.new_lines]
        elif tag == b"\\":
            for target in last:
                target[-1] = target[-1].rstrip(b"\r\n")
        else:
            raise PatchError(
                f"{patch_name}: hunk {hunk.number} ({header}) of {current.new_path} is truncated or malformed"
            )
        i += 1
    if old_seen != old_count or new_seen != new_count:
        raise PatchError(
            f"{patch_name}: hunk {hunk.number} ({header}) of {current.new_path} has the wrong line count"
        )
    current.hunks.append(hunk)
    return i


def _stripped(path: str, strip: int, patch_name: str) -> PurePosixPath:
    if path.startswith("/"):
        raise PatchError(f"{patch_name}: {path!r} is an absolute path; it points outside the tree")
    parts = PurePosixPath(path).parts
    if len(parts) <= strip:
        raise PatchError(f"{patch_name}: cannot strip {strip} component(s) from {path!r}")
    relative = PurePosixPath(*parts[strip:])
    if relative.is_absolute() or ".." in relative.parts:
        raise PatchError(f"{patch_name}: {path!r} points outside the tree")
    return relative


def _find(lines: list[bytes], wanted: list[bytes], expected_index: int) -> int | None:
    """The start index nearest to `expected_index` (within MAX_OFFSET) where `wanted` matches exactly."""
    if not wanted:
        return max(0, min(expected_index, len(lines)))
    for distance in range(MAX_OFFSET + 1):
        for start in (
            (expected_index - distance, expected_index + distance) if distance else (expected_index,)
        ):
            if 0 <= start <= len(lines) - len(wanted) and lines[start : start + len(wanted)] == wanted:
                return start
    return None


def _apply_hunks(original: list[bytes], file_patch: FilePatch, shown: str, patch_name: str) -> list[bytes]:
    result = list(original)
    shift = 0  # how far earlier hunks moved the lines below them
    floor = 0  # hunks apply in order and never overlap
    for hunk in file_patch.hunks:
        # "-0,0" means "insert before line 1"; otherwise old_start is 1-based.
        expected = max(hunk.old_start - 1, 0) + shift if hunk.old_lines else hunk.old_start + shift
        start = _find(result, hunk.old_lines, expected)
        if start is None or start < floor:
            raise PatchError(f"{patch_name}: hunk {hunk.number} ({hunk.header}) does not apply to {shown}")
        result[start : start + len(hunk.old_lines)] = hunk.new_lines
        shift += len(hunk.new_lines) - len(hunk.old_lines)
        floor = start + len(hunk.new_lines)
    return result


def apply_patch(tree: Path, patch_file: Path, strip: int = 1) -> None:
    """Apply `patch_file` to the files under `tree`, strictly; raise PatchError when anything does not fit."""
    name = patch_file.name
    try:
        data = patch_file.read_bytes()
    except OSError as exc:
        raise PatchError(f"{name}: cannot read patch: {exc.strerror or exc}") from None
    root = Path(os.path.realpath(tree))
    writes: dict[Path, list[bytes] | None] = {}  # None = delete
    for file_patch in parse_patch(data, name):
        source = file_patch.new_path if file_patch.creates else file_patch.old_path
        relative = _stripped(source, strip, name)
        target = root.joinpath(*relative.parts)
        real_parent = Path(os.path.realpath(target.parent))
        if real_parent != root and root not in real_parent.parents:
            raise PatchError(f"{name}: {relative} resolves outside the tree")
        shown = relative.as_posix()
        if target in writes:
            current = writes[target]
            if current is None:
                raise PatchError(f"{name}: {shown} is patched after being deleted")
            original = current
        elif file_patch.creates:
            if target.exists():
                raise PatchError(f"{name}: {shown} should be created but already exists")
            original = []
        else:
            if not target.is_file():
                raise PatchError(f"{name}: {shown} does not exist in {tree}")
            original = target.read_bytes().splitlines(keepends=True)
        patched = _apply_hunks(original, file_patch, shown, name)
        if file_patch.deletes:
            if patched:
                raise PatchError(f"{name}: {shown} should be deleted but the patch does not remove all of it")
            writes[target] = None
        else:
            writes[target] = patched
    for target, content in writes.items():
        if content is None:
            target.unlink()
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = target.stat().st_mode & 0o777 if target.exists() else 0o644
        temporary = target.with_name(target.name + ".rewheel-patching")
        temporary.write_bytes(b"".join(content))
        os.chmod(temporary, mode)
        os.replace(temporary, target)


def apply_patches(tree: Path, patches: Iterable[tuple[Path, int]]) -> list[Path]:
    applied = []
    for patch_file, strip in patches:
        apply_patch(tree, patch_file, strip)
        applied.append(patch_file)
    return applied


def apply_recipe_patches(recipe: Recipe, version: str, target: str, stage: str, tree: Path) -> list[Path]:
    """Apply the recipe's patches for this version, target and stage ("source" or "wheel"), in file order.

    Each patch file is checked against its pinned sha256 before anything is applied, so an edited patch
    is refused even when it would apply."""
    selected = recipe.patches_for(version, target, stage)
    resolved: list[tuple[Path, int]] = []
    for patch in selected:
        problem = patch_file_problem(recipe, patch)
        if problem:
            raise PatchError(problem)
        resolved.append((recipe.patch_dir / patch.file, patch.strip))
    return apply_patches(tree, resolved)
