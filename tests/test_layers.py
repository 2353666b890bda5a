"""The layers of pipeline/ do not leak: read from the real sources' imports with `ast` (lazy imports inside
functions and TYPE_CHECKING blocks count too: each is still a dependency someone has to keep working).

- a backend package's modules are its own: other layers use what its __init__ offers (the zig backend's
  ZigBackend and build_metadata_sandboxed), never pipeline.builders.backends.zig.<module>;
- runtimes sit below the build: nothing in pipeline/runtimes imports pipeline.builders;
- what a target is sits below every backend: nothing in pipeline/targets imports pipeline.builders (not yet:
  Target.to_json still adds cibuildwheel's words, marked xfail below until they move to the JSON's edges);
- the shared helpers (util, paths, errors, engines, source_inspect, sandbox) import no stage above them;
- stages never import the command line (pipeline.commands, pipeline.cli): the CLI calls stages, not back.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PIPELINE = Path(__file__).resolve().parent.parent / "pipeline"
ZIG = PIPELINE / "builders" / "backends" / "zig"
SHARED = ("util.py", "paths.py", "errors.py", "engines.py", "source_inspect.py", "sandbox.py", "toml.py")


def _is_module(dotted: str) -> bool:
    """`dotted` names a module or package of this tree (not a function or class imported from one)."""
    path = PIPELINE.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every module of pipeline/ that `path` imports, anywhere in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # `from pipeline.builders.backends.zig import rust` imports the module rust, not a name of __init__
            found += [
                (node.lineno, f"{node.module}.{alias.name}")
                for alias in node.names
                if _is_module(f"{node.module}.{alias.name}")
            ]
    return [(line, name) for line, name in found if name == "pipeline" or name.startswith("pipeline.")]


def _under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _sources() -> list[Path]:
    return sorted(PIPELINE.rglob("*.py"))


def leaks() -> dict[str, list[str]]:
    """Each rule's offending imports, as `file:line imports module`."""
    found: dict[str, list[str]] = {
        rule: [] for rule in ("backend internals", "runtimes", "targets", "shared", "cli")
    }
    for path in _sources():
        relative = path.relative_to(PIPELINE.parent).as_posix()
        in_zig = path.is_relative_to(ZIG)
        in_runtimes = path.is_relative_to(PIPELINE / "runtimes")
        is_cli = path.is_relative_to(PIPELINE / "commands") or path.name in ("cli.py", "__main__.py")
        shared = path.parent == PIPELINE and path.name in SHARED
        for line, name in imports_of(path):
            where = f"{relative}:{line} imports {name}"
            if (
                not in_zig
                and _under(name, "pipeline.builders.backends.zig")
                and name != "pipeline.builders.backends.zig"
            ):
                found["backend internals"].append(where)
            if in_runtimes and _under(name, "pipeline.builders"):
                found["runtimes"].append(where)
            if path.is_relative_to(PIPELINE / "targets") and _under(name, "pipeline.builders"):
                found["targets"].append(where)
            if shared and any(_under(name, f"pipeline.{above}") for above in ("builders", "commands", "cli")):
                found["shared"].append(where)
            if path.name == "util.py" and path.parent == PIPELINE:
                found["shared"].append(where)  # util.py imports nothing of rewheel's: anything may import it
            if not is_cli and (_under(name, "pipeline.commands") or _under(name, "pipeline.cli")):
                found["cli"].append(where)
    return found


def test_the_import_reader_sees_lazy_and_from_imports() -> None:
    """The rules below mean something only if the reader finds what is there: a lazy import inside a function,
    a TYPE_CHECKING one, and a module named in a `from package import module`."""
    orchestrator = {name for _, name in imports_of(PIPELINE / "builders" / "orchestrator.py")}
    assert "pipeline.builders.repair" in orchestrator  # imported inside functions only
    assert "pipeline.plan" in orchestrator  # under TYPE_CHECKING
    assert "pipeline.builders.prefetch" in orchestrator  # `from pipeline.builders import prefetch`
    recipe_new = {name for _, name in imports_of(PIPELINE / "recipe_new.py")}
    assert "pipeline.builders.backends.zig" in recipe_new
    assert "pipeline.builders.backends.zig.ZigBackend" not in recipe_new  # a class, not a module
    assert len(_sources()) > 50


@pytest.mark.parametrize("rule", ["backend internals", "runtimes", "targets", "shared", "cli"])
def test_no_layer_leaks(rule: str) -> None:
    offenders = leaks()[rule]
    assert not offenders, f"{rule}: " + "; ".join(offenders)
