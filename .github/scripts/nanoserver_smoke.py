"""Import wheels inside a Nano Server container: `prepare` on the host, `check` inside the container.

prepare (host, with rewheel installed): installs the wheels this interpreter can load into MOUT/site,
copies the interpreter's installation to MOUT/python (a full CPython install runs on Nano Server as is),
writes MOUT/imports.json from the recipes' [test] imports, and copies this script to MOUT.

check (inside the container, standard library only): imports every listed module and prints each result;
exit 0 when all imported, 1 when any failed (with the interpreter's own error), 2 when there was nothing
to import.

    python nanoserver_smoke.py prepare --wheels DIR --out MOUT [--python-exe PATH] [--recipes DIR]
    MOUT\\python\\python.exe -I MOUT\\nanoserver_smoke.py check --mount MOUT
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

IMPORTS_FILE = "imports.json"


def _installable(wheels: list[Path]) -> list[Path]:
    """The wheels whose tags this interpreter supports (a folder may hold cp311 and cp312 builds)."""
    from packaging.tags import sys_tags
    from packaging.utils import parse_wheel_filename

    supported = set(sys_tags())
    return [w for w in wheels if supported & set(parse_wheel_filename(w.name)[3])]


def _imports_for(wheels: list[Path], recipes_dir: Path) -> dict[str, list[str]]:
    """project -> modules to import, from each wheel's recipe."""
    from packaging.utils import canonicalize_name, parse_wheel_filename

    from pipeline.recipe import load_recipes

    by_name = {canonicalize_name(r.name): r for r in load_recipes([recipes_dir])}
    imports: dict[str, list[str]] = {}
    for wheel in wheels:
        project = canonicalize_name(parse_wheel_filename(wheel.name)[0])
        recipe = by_name.get(project)
        if recipe is None or not recipe.test.imports:
            raise SystemExit(f"nanoserver_smoke: no recipe [test] imports for {wheel.name}")
        imports[str(project)] = list(recipe.test.imports)
    return imports


def prepare(wheels_dir: Path, out: Path, python_exe: Path | None, recipes_dir: Path) -> int:
    wheels = sorted(wheels_dir.glob("*.whl"))
    chosen = _installable(wheels)
    if not chosen:
        print(
            f"nanoserver_smoke: no wheel in {wheels_dir} fits Python {sys.version.split()[0]}",
            file=sys.stderr,
        )
        return 2
    out.mkdir(parents=True, exist_ok=True)
    site = out / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--target",
            str(site),
            *map(str, chosen),
        ],
        check=True,
    )
    if python_exe is not None:
        home = python_exe.resolve().parent
        # Installed packages stay behind: the container must see only the wheels under test.
        shutil.copytree(
            home, out / "python", dirs_exist_ok=True, ignore=shutil.ignore_patterns("site-packages")
        )
    imports = _imports_for(chosen, recipes_dir)
    (out / IMPORTS_FILE).write_text(
        json.dumps({"wheels": [w.name for w in chosen], "imports": imports}, indent=2), encoding="utf-8"
    )
    shutil.copy2(__file__, out / Path(__file__).name)
    print(f"prepared {len(chosen)} wheel(s) in {out}: {', '.join(w.name for w in chosen)}")
    return 0


def check(mount: Path) -> int:
    data = json.loads((mount / IMPORTS_FILE).read_text(encoding="utf-8"))
    sys.path.insert(0, str(mount / "site"))
    modules = [m for names in data["imports"].values() for m in names]
    if not modules:
        print("nanoserver_smoke: nothing to import", file=sys.stderr)
        return 2
    failed = 0
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:  # the loader's own error is the result we report
            failed += 1
            print(f"FAIL {module}: {type(exc).__name__}: {exc}")
            traceback.print_exc(file=sys.stderr)
        else:
            print(f"ok   {module}")
    print(
        f"{len(modules) - failed} of {len(modules)} module(s) imported with Python {sys.version.split()[0]}"
    )
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser("prepare")
    prep.add_argument("--wheels", type=Path, required=True)
    prep.add_argument("--out", type=Path, required=True)
    prep.add_argument("--python-exe", type=Path, default=None)
    prep.add_argument("--recipes", type=Path, default=Path("recipes"))
    chk = commands.add_parser("check")
    chk.add_argument("--mount", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "prepare":
        return prepare(args.wheels, args.out, args.python_exe, args.recipes)
    return check(args.mount)


if __name__ == "__main__":
    sys.exit(main())
