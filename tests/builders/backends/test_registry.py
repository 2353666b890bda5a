"""One backend registry: the CLI's --backend choices, the recipe model, the shipped schema and `auto`'s
order all come from pipeline.builders.backends.REGISTRY."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import get_args

from pipeline.builders.backends import BACKEND_CHOICES, REGISTRY, SOURCE_BACKEND_NAMES, auto_order
from pipeline.commands.build import command as build
from pipeline.recipe import Build

REPO = Path(__file__).resolve().parents[3]


def test_cli_choices_are_the_registry() -> None:
    option = next(p for p in build.params if p.name == "backend")
    assert tuple(option.type.choices) == ("auto", *(e.name for e in REGISTRY))  # type: ignore[attr-defined]


def test_recipe_model_and_schema_are_the_registry() -> None:
    key_type = get_args(Build.model_fields["backend"].annotation)[0]
    assert get_args(key_type) == SOURCE_BACKEND_NAMES
    shipped = json.loads((REPO / "pipeline" / "resources" / "recipe.schema.json").read_text(encoding="utf-8"))
    enum = shipped["$defs"]["Build"]["properties"]["backend"]["propertyNames"]["enum"]
    assert tuple(enum) == SOURCE_BACKEND_NAMES


def test_auto_order_follows_the_declared_priorities() -> None:
    assert auto_order("sdist") == ["cibuildwheel", "zig"]
    assert auto_order("wheel") == ["wheel-source"]
    assert set(auto_order("sdist")) | set(auto_order("wheel")) == set(BACKEND_CHOICES) - {"auto"}


def test_an_unknown_backend_is_one_line_listing_the_registry() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "pipeline", "build", "--backend", "nope", "recipes/markupsafe.toml"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert run.returncode == 2
    for name in BACKEND_CHOICES:
        assert name in run.stderr
    assert "Traceback" not in run.stderr
