"""Strict patch application: what applies, what is refused, and agreement with GNU diff/patch."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO
from pipeline.patching import MAX_OFFSET, PatchError, apply_patch, apply_recipe_patches
from pipeline.recipe import load_recipe

GLIBC_PIP_23_2_1 = (
    "pip",
    "23.2.1",
    "pip-23.2.1-py3-none-any.whl",
    "7ccf472345f20d35bdc9d1841ff5f313260c2c33fe417f48c30ac46cccabf5be",
)


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


NUMBERS = b"".join(b"line %d\n" % i for i in range(1, 61))


def test_modify_create_delete_and_several_hunks(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "t", {"pkg/a.txt": NUMBERS, "pkg/gone.txt": b"bye\n"})
    patch = tmp_path / "0001-mixed.patch"
    patch.write_bytes(
        b"This header explains the patch; patch(1) ignores it.\n"
        b"--- a/pkg/a.txt\n+++ b/pkg/a.txt\n"
        b"@@ -2,3 +2,3 @@\n line 2\n-line 3\n+LINE THREE\n line 4\n"
        b"@@ -40,3 +40,4 @@\n line 40\n line 41\n+inserted\n line 42\n"
        b"--- /dev/null\n+++ b/pkg/new.txt\n@@ -0,0 +1,2 @@\n+hello\n+world\n"
        b"--- a/pkg/gone.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n"
    )
    apply_patch(tree, patch, strip=1)
    text = (tree / "pkg/a.txt").read_bytes()
    assert b"LINE THREE\n" in text and b"line 3\n" not in text
    assert b"line 41\ninserted\nline 42\n" in text
    assert (tree / "pkg/new.txt").read_bytes() == b"hello\nworld\n"
    assert not (tree / "pkg/gone.txt").exists()


def test_stale_hunk_names_patch_hunk_and_file_and_changes_nothing(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "t", {"pip/_internal/utils/glibc.py": NUMBERS, "other.txt": b"x\n"})
    before = _snapshot(tree)
    patch = tmp_path / "0001-x.patch"
    patch.write_bytes(
        b"--- a/other.txt\n+++ b/other.txt\n@@ -1 +1 @@\n-x\n+y\n"
        b"--- a/pip/_internal/utils/glibc.py\n+++ b/pip/_internal/utils/glibc.py\n"
        b"@@ -2,3 +2,3 @@\n line 2\n-line 3\n+line three\n line 4\n"
        b"@@ -40,7 +40,9 @@\n line 40\n line 41\n-line 42 (changed upstream)\n+a\n+b\n+c\n line 43\n line 44\n line 45\n line 46\n"
    )
    with pytest.raises(PatchError) as caught:
        apply_patch(tree, patch, strip=1)
    assert str(caught.value) == (
        "0001-x.patch: hunk 2 (@@ -40,7 +40,9 @@) does not apply to pip/_internal/utils/glibc.py"
    )
    # All or nothing: the first file, and the first hunk of the second, were not written either.
    assert _snapshot(tree) == before


def test_whitespace_difference_is_not_fuzzed(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "t", {"f.py": b"def f():\n    return 1\n"})
    patch = tmp_path / "ws.patch"
    patch.write_bytes(b"--- a/f.py\n+++ b/f.py\n@@ -1,2 +1,2 @@\n def f():\n-  return 1\n+  return 2\n")
    with pytest.raises(PatchError, match=r"hunk 1 \(@@ -1,2 \+1,2 @@\) does not apply to f.py"):
        apply_patch(tree, patch)


def test_offset_within_window_applies_beyond_is_refused(tmp_path: Path) -> None:
    patch = tmp_path / "moved.patch"
    patch.write_bytes(b"--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n alpha\n-beta\n+BETA\n gamma\n")
    near = _tree(tmp_path / "near", {"f": b"x\n" * 10 + b"alpha\nbeta\ngamma\n"})
    apply_patch(near, patch)
    assert (near / "f").read_bytes().endswith(b"alpha\nBETA\ngamma\n")
    far = _tree(tmp_path / "far", {"f": b"x\n" * (MAX_OFFSET + 1) + b"alpha\nbeta\ngamma\n"})
    with pytest.raises(PatchError, match="hunk 1"):
        apply_patch(far, patch)


def test_crlf_and_missing_final_newline_are_byte_exact(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "t", {"w.txt": b"one\r\ntwo\r\nthree"})
    patch = tmp_path / "crlf.patch"
    patch.write_bytes(
        b"--- a/w.txt\n+++ b/w.txt\n@@ -1,3 +1,3 @@\n one\r\n two\r\n-three\n\\ No newline at end of file\n+THREE\n"
        b"\\ No newline at end of file\n"
    )
    apply_patch(tree, patch)
    assert (tree / "w.txt").read_bytes() == b"one\r\ntwo\r\nTHREE"


@pytest.mark.parametrize("bad_path", [b"a/../../etc/passwd", b"/etc/passwd"])
def test_paths_outside_the_tree_are_refused(tmp_path: Path, bad_path: bytes) -> None:
    tree = _tree(tmp_path / "t", {"f": b"x\n"})
    patch = tmp_path / "evil.patch"
    patch.write_bytes(b"--- /dev/null\n+++ " + bad_path + b"\n@@ -0,0 +1 @@\n+pwned\n")
    with pytest.raises(PatchError, match="outside the tree|cannot strip"):
        apply_patch(tree, patch, strip=1)
    assert not (tmp_path / "etc").exists()


def test_not_a_diff_and_missing_file(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "t", {"f": b"x\n"})
    junk = tmp_path / "junk.patch"
    junk.write_text("just words\n")
    with pytest.raises(PatchError, match="junk.patch: not a unified diff"):
        apply_patch(tree, junk)
    missing = tmp_path / "missing.patch"
    missing.write_bytes(b"--- a/nope\n+++ b/nope\n@@ -1 +1 @@\n-x\n+y\n")
    with pytest.raises(PatchError, match="missing.patch: nope does not exist"):
        apply_patch(tree, missing)


def test_agrees_with_gnu_diff_and_patch(tmp_path: Path) -> None:
    """A diff made by GNU diff -ruN applies here to exactly the tree GNU patch produces."""
    diff, gnu_patch = shutil.which("diff"), shutil.which("patch")
    if not diff or not gnu_patch:
        from conftest import need_toolset

        need_toolset("gnu-patch")
    old = _tree(tmp_path / "a", {"x/a.txt": NUMBERS, "x/b.txt": b"keep\nme\n", "x/old.txt": b"remove\n"})
    new = _tree(
        tmp_path / "b",
        {
            "x/a.txt": NUMBERS.replace(b"line 5\n", b"five\n").replace(b"line 50\n", b"fifty\nfifty-one\n"),
            "x/b.txt": b"keep\nme\n",
            "x/c.txt": b"created\n",
        },
    )
    result = subprocess.run(["diff", "-ruN", "a", "b"], cwd=tmp_path, capture_output=True)
    assert result.returncode == 1, result.stderr  # 1 = differences found
    patch = tmp_path / "gnu.patch"
    patch.write_bytes(result.stdout)

    ours = tmp_path / "ours"
    shutil.copytree(old, ours)
    apply_patch(ours, patch, strip=1)
    theirs = tmp_path / "theirs"
    shutil.copytree(old, theirs)
    subprocess.run(["patch", "-p1", "-s", "-i", str(patch)], cwd=theirs, check=True)
    assert _snapshot(ours) == _snapshot(theirs) == _snapshot(new)


def test_recipe_patches_are_pinned_and_applied(tmp_path: Path, pypi_file) -> None:
    """The real pip recipe: its wheel-stage patch applies to the real pip 23.2.1 wheel; a patch file
    whose bytes differ from the recipe's sha256 is refused before anything is applied."""
    from pipeline.unpack import unpack

    recipe = load_recipe(REPO / "recipes" / "pip.toml")
    tree = unpack(pypi_file(*GLIBC_PIP_23_2_1), tmp_path / "wheel")
    applied = apply_recipe_patches(recipe, "23.2.1", "any", "wheel", tree)
    assert [p.name for p in applied] == ["0001-guard-ctypes-cdll-none.patch"]
    assert "    except OSError:\n        return None" in (tree / "pip/_internal/utils/glibc.py").read_text()
    assert apply_recipe_patches(recipe, "23.2.1", "any", "source", tree) == []

    # A copy of the recipe whose patch file was edited after pinning.
    (tmp_path / "recipes").mkdir()
    shutil.copy(REPO / "recipes" / "pip.toml", tmp_path / "recipes" / "pip.toml")
    edited = tmp_path / "patches" / "pip" / "0001-guard-ctypes-cdll-none.patch"
    edited.parent.mkdir(parents=True)
    edited.write_bytes((recipe.patch_dir / "0001-guard-ctypes-cdll-none.patch").read_bytes() + b"\n")
    copy = load_recipe(tmp_path / "recipes" / "pip.toml")
    fresh = unpack(pypi_file(*GLIBC_PIP_23_2_1), tmp_path / "wheel2")
    before = hashlib.sha256((fresh / "pip/_internal/utils/glibc.py").read_bytes()).hexdigest()
    with pytest.raises(PatchError, match="0001-guard-ctypes-cdll-none.patch: sha256 mismatch"):
        apply_recipe_patches(copy, "23.2.1", "any", "wheel", fresh)
    assert hashlib.sha256((fresh / "pip/_internal/utils/glibc.py").read_bytes()).hexdigest() == before


def test_a_pinned_patch_that_is_a_link_out_of_patches_is_refused_when_building(
    tmp_path: Path, pypi_file
) -> None:
    """The bytes match the pin, but the file is a link to somewhere outside patches/: the build refuses it too,
    not only `recipes check` (a checkout must not pull a patch in from elsewhere on the machine)."""
    from pipeline.unpack import unpack

    recipe = load_recipe(REPO / "recipes" / "pip.toml")
    outside = tmp_path / "elsewhere.patch"
    outside.write_bytes((recipe.patch_dir / "0001-guard-ctypes-cdll-none.patch").read_bytes())
    (tmp_path / "recipes").mkdir()
    shutil.copy(REPO / "recipes" / "pip.toml", tmp_path / "recipes" / "pip.toml")
    link = tmp_path / "patches" / "pip" / "0001-guard-ctypes-cdll-none.patch"
    link.parent.mkdir(parents=True)
    link.symlink_to(outside)
    copy = load_recipe(tmp_path / "recipes" / "pip.toml")
    tree = unpack(pypi_file(*GLIBC_PIP_23_2_1), tmp_path / "wheel")
    with pytest.raises(PatchError, match="must be a file inside .*, not a link"):
        apply_recipe_patches(copy, "23.2.1", "any", "wheel", tree)


def test_applying_twice_fails_loudly(tmp_path: Path, pypi_file) -> None:
    """What a stale patch looks like in real life: pip >= 24.2 already has the guard, so the hunk no longer
    matches; here, the same situation by applying the patch to an already patched tree."""
    from pipeline.unpack import unpack

    recipe = load_recipe(REPO / "recipes" / "pip.toml")
    patch = recipe.patch_dir / "0001-guard-ctypes-cdll-none.patch"
    tree = unpack(pypi_file(*GLIBC_PIP_23_2_1), tmp_path / "wheel")
    apply_patch(tree, patch, strip=1)
    with pytest.raises(PatchError) as caught:
        apply_patch(tree, patch, strip=1)
    assert str(caught.value) == (
        "0001-guard-ctypes-cdll-none.patch: hunk 1 (@@ -40,7 +40,13 @@) does not apply to pip/_internal/utils/glibc.py"
    )
