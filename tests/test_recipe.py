"""The recipe model: real recipes validate, broken ones fail with one line naming file, key and expectation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import RecipeError
from pipeline.recipe import Recipe, check_patch_files, check_targets, json_schema, load_recipes, parse_recipe

REPO = Path(__file__).resolve().parent.parent

GOOD = """
name = "demo"
targets = ["musllinux_1_2_x86_64", "win_amd64-nanoserver"]
python = ["3.11", "3.12"]
exclude = ["win_*:3.12"]

[[source]]
version = "1.0"
kind = "sdist"
filename = "demo-1.0.tar.gz"
sha256 = "{h}"

[features.display]
description = "Windows display and clipboard support"
environment = {{ LINK = "/DELAYLOAD:USER32.dll" }}
lost = "ImageGrab and ImageWin"

[build]
environment = {{ CFLAGS = "-O2" }}

[build.target."musllinux_*"]
before-all = ["apk add libffi-dev"]
environment = {{ EXTRA = "1" }}

[build.target."win_amd64-nanoserver"]
disable-features = ["display"]

[repair.delvewheel]
no-dll = ["msvcp140.dll"]

[test]
imports = ["demo"]
"""


def good(path: Path) -> Recipe:
    return parse_recipe(GOOD.format(h="a" * 64), path / "demo.toml")


def test_good_recipe_parses_with_per_target_overrides(tmp_path: Path) -> None:
    recipe = good(tmp_path)
    musl = recipe.build.for_target("musllinux_1_2_x86_64")
    assert musl.environment == {"CFLAGS": "-O2", "EXTRA": "1"}
    assert musl.before_all == ["apk add libffi-dev"]
    assert recipe.build.for_target("win_amd64-nanoserver").disable_features == ["display"]
    assert recipe.build.for_target("win_amd64").disable_features == []
    assert recipe.repair.delvewheel.no_dll == ["msvcp140.dll"]
    assert recipe.is_excluded("win_amd64-nanoserver", "3.12")
    assert not recipe.is_excluded("win_amd64-nanoserver", "3.11")
    assert check_targets(recipe) == []


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        (lambda t: t.replace('sha256 = "' + "a" * 64, 'sha256 = "abc'), "key 'source.0.sha256'"),
        (lambda t: t.replace('kind = "sdist"', 'kind = "egg"'), "key 'source.0.kind'"),
        (lambda t: t.replace('kind = "sdist"', 'kind = "wheel"'), "needs a .whl file name"),
        (lambda t: t.replace("[test]", "[test]\nimport = ['x']"), "unknown key 'test.import'"),
        (lambda t: t.replace('python = ["3.11", "3.12"]', 'python = ["311"]'), "key 'python.0'"),
        (lambda t: t.replace('disable-features = ["display"]', 'disable-features = ["codecs"]'), "'codecs'"),
        (lambda t: t.replace('name = "demo"\n', ""), "key 'name' is required"),
        (
            lambda t: (
                t
                + "\n[[source]]\nversion='1.0'\nkind='sdist'\nfilename='x.tar.gz'\nsha256='"
                + "b" * 64
                + "'"
            ),
            "unique",
        ),
        (lambda t: t.replace("[[source]]", "[[source]]\nfilename2 = 1"), "unknown key 'source.0.filename2'"),
        (lambda t: t.replace("name = ", "name = = "), "not valid TOML"),
    ],
)
def test_bad_recipe_is_one_line_naming_file_and_key(tmp_path: Path, mutation, expected: str) -> None:  # type: ignore[no-untyped-def]
    text = mutation(GOOD.format(h="a" * 64))
    with pytest.raises(RecipeError) as info:
        parse_recipe(text, tmp_path / "demo.toml")
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / "demo.toml") in message
    assert expected in message


def test_unknown_target_and_dead_pattern_reported(tmp_path: Path) -> None:
    text = GOOD.format(h="a" * 64).replace('"win_amd64-nanoserver"]', '"win_amd65"]')
    text = text.replace('[build.target."musllinux_*"]', '[build.target."solaris_*"]')
    problems = check_targets(parse_recipe(text, tmp_path / "demo.toml"))
    assert any("unknown target 'win_amd65'" in p for p in problems)
    assert any("'solaris_*' matches no known target" in p for p in problems)


def test_patch_files_checked_against_sha256(tmp_path: Path) -> None:
    (tmp_path / "recipes").mkdir()
    (tmp_path / "patches" / "demo").mkdir(parents=True)
    patch = tmp_path / "patches" / "demo" / "0001-fix.patch"
    patch.write_text("--- a/x\n+++ b/x\n")
    text = GOOD.format(h="a" * 64) + '\n[[patch]]\nfile = "0001-fix.patch"\nsha256 = "' + "0" * 64 + '"\n'
    recipe = parse_recipe(text, tmp_path / "recipes" / "demo.toml")
    problems = check_patch_files(recipe)
    assert len(problems) == 1 and "sha256 mismatch" in problems[0] and "expected " + "0" * 64 in problems[0]
    patch.unlink()
    assert "does not exist" in check_patch_files(recipe)[0]


def test_patch_path_cannot_escape(tmp_path: Path) -> None:
    text = GOOD.format(h="a" * 64) + '\n[[patch]]\nfile = "../../etc/passwd"\nsha256 = "' + "0" * 64 + '"\n'
    with pytest.raises(RecipeError, match="key 'patch.0.file'"):
        parse_recipe(text, tmp_path / "demo.toml")


def test_file_name_must_match_recipe_name(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="file name must match"):
        parse_recipe(GOOD.format(h="a" * 64), tmp_path / "other.toml")


def test_repository_recipes_validate() -> None:
    recipes = load_recipes([REPO / "recipes"])
    names = {r.name for r in recipes}
    assert "markupsafe" in names
    for recipe in recipes:
        assert check_targets(recipe) == [], recipe.name
        assert check_patch_files(recipe) == [], recipe.name


def test_shipped_json_schema_matches_model_and_validates_real_recipes() -> None:
    import jsonschema

    from pipeline import toml

    shipped = json.loads((REPO / "pipeline" / "resources" / "recipe.schema.json").read_text())
    assert shipped == json_schema(), (
        "regenerate with: rewheel recipes schema -o pipeline/resources/recipe.schema.json"
    )
    for path in sorted((REPO / "recipes").glob("*.toml")):
        jsonschema.validate(toml.loads(path.read_text()), shipped)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "x", "targets": ["any"], "source": [{"version": "1"}]}, shipped)


def test_broken_recipe_cli_one_line_exit_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text(
        'name = "broken"\ntargets = ["any"]\n[[source]]\nversion = "1"\nkind = "wheel"\n'
        'filename = "broken-1-py3-none-any.whl"\nsha256 = "nothex"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "recipes", "check", str(broken)], capture_output=True, text=True
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(broken) in lines[0] and "source.0.sha256" in lines[0] and "Traceback" not in result.stderr
