"""Benchmark: the zig backend over real sdists of the compiled ecosystem (benchmarks/zig_ecosystem.toml).

Each package (setuptools C, Cython, C++, meson-python, scikit-build-core/CMake, in-tree backends, packages
with native libraries) is built for musllinux_1_2_x86_64, musllinux_1_2_aarch64 and manylinux_2_17_aarch64
through the real flow (`rewheel build --backend zig`: fetch by sha256, build, auditwheel repair, verify,
smoke on the target's runtime where this machine has one). It prints, per job, one line, and then the
counts: built, verified, imported, "not imported: no runtime" (the target has no runtime here), and every
failure or refusal with its one-line reason.

Run: `python benchmarks/zig_ecosystem.py [--target T ...] [--only NAME ...] [--json]` (minutes per job on
2 cores; all jobs take long: use --only/--target for a slice). `--report RUN.json [RERUN.json ...]` prints the
summary of saved --json runs, a later run's jobs replacing the earlier run's (re-running only failed jobs).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline import toml

REPO = Path(__file__).resolve().parent.parent
MANIFEST = Path(__file__).with_suffix(".toml")
TARGETS = ["musllinux_1_2_x86_64", "musllinux_1_2_aarch64", "manylinux_2_17_aarch64"]
PYTHON = "3.11"


def _toml_value(value: object) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)  # strings and lists of strings are valid TOML in JSON spelling


def write_recipe(package: dict[str, object], folder: Path) -> Path:
    """The package's recipe: the shipped one, or one written from the manifest entry."""
    name = str(package["name"])
    if package.get("recipe"):
        # A recipe finds its patches at ../patches/<name>/ (orjson's build.rs fix, rpds-py's Cargo.toml).
        patches = REPO / "patches" / str(package["recipe"])
        if patches.is_dir():
            shutil.copytree(patches, folder.parent / "patches" / str(package["recipe"]), dirs_exist_ok=True)
        return Path(shutil.copyfile(REPO / "recipes" / f"{package['recipe']}.toml", folder / f"{name}.toml"))
    lines = [
        f"name = {_toml_value(name)}",
        f"targets = {_toml_value(TARGETS)}",
        f"python = {_toml_value([PYTHON])}",
        "",
        "[[source]]",
        f"version = {_toml_value(package['version'])}",
        'kind = "sdist"',
        f"project = {_toml_value(package.get('project', name))}",
        f"filename = {_toml_value(package['filename'])}",
        f"sha256 = {_toml_value(package['sha256'])}",
    ]
    build = {key: package[key] for key in ("environment", "build-requires") if package.get(key)}
    if build:
        lines += ["", "[build]", *(f"{key} = {_toml_value(value)}" for key, value in build.items())]
    lines += ["", "[test]", f"imports = {_toml_value(package['imports'])}"]
    path = folder / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def classify(job: dict[str, object]) -> dict[str, object]:
    stage = job.get("stage")
    smoke = list(job.get("smoke") or [])  # type: ignore[call-overload]
    statuses = {str(s.get("status")) for s in smoke}
    built = bool(job.get("ok")) or stage in ("repair", "verify", "smoke")
    verified = bool(job.get("ok")) or stage == "smoke"
    imported = "passed" in statuses
    no_runtime = bool(job.get("ok")) and not imported
    return {
        "job": job.get("job"),
        "built": built,
        "verified": verified,
        "imported": imported,
        "no_runtime": no_runtime,
        "stage": stage,
        "message": str(job.get("message") or "").splitlines()[0] if job.get("message") else "",
        "smoke": [f"{s.get('status')}: {s.get('message')}" for s in smoke],
        "seconds": job.get("seconds"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", action="append", help="only these targets (default: all three)")
    parser.add_argument("--only", action="append", help="only these package names")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--report",
        nargs="+",
        type=Path,
        metavar="JSON",
        help="print the summary of saved --json runs instead of building (later files replace earlier jobs)",
    )
    args = parser.parse_args(argv)
    if args.report:
        print_report(merge_reports(args.report))
        return 0
    packages = toml.loads(MANIFEST.read_text(encoding="utf-8"))["package"]
    if args.only:
        packages = [p for p in packages if p["name"] in args.only]
    targets = args.target or TARGETS
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rewheel-zig-ecosystem-") as tmp:
        recipes = Path(tmp) / "recipes"
        recipes.mkdir()
        for package in packages:
            write_recipe(package, recipes)
        command = [
            sys.executable, "-m", "pipeline", "build", str(recipes), "--backend", "zig", "--json",
            "--python", PYTHON, "--wheelhouse", str(Path(tmp) / "wheelhouse"),
        ]  # fmt: skip
        for target in targets:
            command += ["--target", target]
        print(
            f"zig ecosystem: {len(packages)} packages x {len(targets)} targets", file=sys.stderr, flush=True
        )
        result = subprocess.run(command, stdout=subprocess.PIPE, text=True)
        try:
            summary = json.loads(result.stdout)
        except json.JSONDecodeError:
            print(f"rewheel build printed no JSON (exit {result.returncode})", file=sys.stderr)
            return 2
    rows = [classify(job) for job in summary.get("jobs", [])]
    categories = {p["name"]: p["category"] for p in packages}
    result = {
        "counts": counts_of(rows, round(time.monotonic() - started, 1)),
        "jobs": rows,
        "categories": categories,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print_report(result)
    return 0


def counts_of(rows: list[dict[str, object]], seconds: float | None) -> dict[str, object]:
    def count(selected: list[dict[str, object]]) -> dict[str, int]:
        return {
            "jobs": len(selected),
            "built": sum(bool(r["built"]) for r in selected),
            "verified": sum(bool(r["verified"]) for r in selected),
            "imported": sum(bool(r["imported"]) for r in selected),
            "not_imported_no_runtime": sum(bool(r["no_runtime"]) for r in selected),
            "failed_or_refused": sum(not r["verified"] for r in selected),
        }

    by_target = {t: count([r for r in rows if str(r["job"]).split("-")[-2] == t]) for t in TARGETS}
    return {**count(rows), "seconds": seconds, "by_target": {t: c for t, c in by_target.items() if c["jobs"]}}


def merge_reports(paths: list[Path]) -> dict[str, object]:
    """Saved --json reports, later ones replacing earlier ones job by job (a re-run of failed jobs after a
    fix); the counts are recomputed and the wall time is the sum of the runs'."""
    jobs: dict[str, dict[str, object]] = {}
    categories: dict[str, object] = {}
    seconds = 0.0
    for path in paths:
        report = json.loads(path.read_text(encoding="utf-8"))
        seconds += float(report["counts"].get("seconds") or 0)
        categories.update(report.get("categories", {}))
        for row in report["jobs"]:
            jobs[str(row["job"])] = row
    rows = list(jobs.values())
    return {"counts": counts_of(rows, round(seconds, 1)), "jobs": rows, "categories": categories}


def print_report(result: dict[str, object]) -> None:
    rows: list[dict[str, object]] = result["jobs"]  # type: ignore[assignment]
    counts: dict[str, object] = result["counts"]  # type: ignore[assignment]
    for row in rows:
        if row["imported"]:
            state = "built, verified, imported"
        elif row["verified"]:
            state = f"built, verified, not imported: {'; '.join(row['smoke']) or 'no runtime'}"  # type: ignore[arg-type]
        else:
            state = f"FAILED at {row['stage']}: {row['message']}"
        print(f"{row['job']}: {state}")
    print()
    for target, c in counts["by_target"].items():  # type: ignore[attr-defined]
        print(
            f"{target}: {c['jobs']} jobs, {c['built']} built, {c['verified']} verified, {c['imported']} imported, "
            f"{c['failed_or_refused']} failed/refused"
        )
    print(
        f"\n{counts['jobs']} jobs: {counts['built']} built, {counts['verified']} verified, "
        f"{counts['imported']} imported, {counts['not_imported_no_runtime']} not imported (no runtime or "
        f"import failed), {counts['failed_or_refused']} failed/refused; {counts['seconds']} s"
    )


if __name__ == "__main__":
    sys.exit(main())
