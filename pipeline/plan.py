"""Expand recipes x targets x Python versions into jobs, in build order.

The dependency graph (recipe `depends`) is kept apart from the builder: plan only orders, it builds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter

from pipeline.errors import RecipeError
from pipeline.recipe import Recipe
from pipeline.targets import catalogue, get_target

# A wheel-source recipe (pip) is not compiled: one job per source version, for any Python.
ANY_PYTHON = "any"


@dataclass(frozen=True)
class Job:
    recipe: Recipe
    version: str
    target: str
    python: str  # "3.11", or ANY_PYTHON for wheel-source recipes

    @property
    def id(self) -> str:
        return f"{self.recipe.name}-{self.version}-{self.target}-{self.python}"

    @property
    def kind(self) -> str:
        return self.recipe.source_for(self.version).kind

    def to_json(self) -> dict[str, object]:
        target = get_target(self.target)
        data: dict[str, object] = {
            "id": self.id,
            "recipe": self.recipe.name,
            "recipe_path": str(self.recipe.path) if self.recipe.path else None,
            "version": self.version,
            "kind": self.kind,
            "target": self.target,
            "python": self.python,
            "platform_tag": target.platform_tag,
            "os": target.os,
            "arch": target.arch,
        }
        return data  # cibuildwheel's identifier is added at the edges: cibuildwheel_ids.job_json


def build_order(recipes: list[Recipe]) -> list[Recipe]:
    """Recipes sorted so each comes after the recipes it depends on; a cycle or unknown name is an error."""
    by_name = {r.normalized_name: r for r in recipes}
    graph: dict[str, set[str]] = {}
    for recipe in recipes:
        deps = set()
        for dep in recipe.depends:
            key = Recipe.model_construct(name=dep).normalized_name
            if key not in by_name:
                raise RecipeError(f"{recipe.path}: depends on {dep!r}, which is not among the recipes given")
            deps.add(key)
        graph[recipe.normalized_name] = deps
    try:
        # static_order is stable for a given insertion order; sort names so plans are reproducible.
        sorter = TopologicalSorter({k: sorted(graph[k]) for k in sorted(graph)})
        return [by_name[name] for name in sorter.static_order()]
    except CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        raise RecipeError(f"recipe dependency cycle: {cycle}") from None


def plan(recipes: list[Recipe], targets: list[str] | None = None) -> list[Job]:
    """All jobs, dependencies first. `targets` filters (names or shell patterns)."""
    import fnmatch

    known = catalogue()
    for wanted in targets or ():
        if not any(fnmatch.fnmatchcase(name, wanted) for name in known):
            get_target(wanted)  # raises the one-line "unknown target" error
    jobs: list[Job] = []
    for recipe in build_order(recipes):
        for target in recipe.targets:
            if targets and not any(fnmatch.fnmatchcase(target, w) for w in targets):
                continue
            for source in recipe.source:
                pythons = [ANY_PYTHON] if source.kind == "wheel" else recipe.python
                for python in pythons:
                    if recipe.is_excluded(target, python):
                        continue
                    jobs.append(Job(recipe, source.version, target, python))
    return jobs
