"""`rewheel smoke` on a corpus of real upstream wheels, each on its own target: passed, FAILED, cannot-host.

The corpus is benchmarks/data/smoke_corpus.json (filename, project, version, sha256, target, Python and
language per wheel): popular packages with C, C++, Cython, Rust and Fortran extensions (numpy, pandas,
cryptography, bcrypt, Pillow, lxml, grpcio, pydantic-core, pywin32, zstandard, greenlet, msgpack, orjson,
scipy), as the index serves them for musllinux_1_2 x86_64 and aarch64, manylinux aarch64 and win_amd64, for
CPython 3.11 and 3.13. The wheels were chosen by resolving SPEC below with uv for each target (`--pin`
rewrites the data file), and each is fetched once through rewheel's fetch layer (hash-checked, cached).

These wheels load on their targets for their users, so a FAILED is either a false alarm of the harness or
of a runtime, and the goal is none. A runtime that lacks what the real target has (a standard library
module, a Windows DLL) must say cannot-host and name the missing piece; skipped modules (optional extras the
wheel does not declare) are listed with their reasons.

    python benchmarks/smoke_corpus.py [--quick] [--json] [--pin]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from pipeline.fetch import Pin, fetch

MANIFEST = Path(__file__).resolve().parent / "data" / "smoke_corpus.json"

# What the corpus holds: target -> Python -> requirement pins. Resolved per cell with uv (no dependencies;
# smoke installs those itself), the wheel pip would pick on that target.
_LANGUAGES = {
    "numpy": "C", "pandas": "Cython", "cryptography": "Rust", "bcrypt": "Rust", "pillow": "C",
    "lxml": "Cython", "grpcio": "C++", "pydantic-core": "Rust", "pywin32": "C++", "zstandard": "C",
    "greenlet": "C++", "msgpack": "Cython", "orjson": "Rust", "scipy": "Fortran", "markupsafe": "C",
}  # fmt: skip
_PINS = {
    "numpy": "numpy==2.3.5", "pandas": "pandas==2.3.3", "cryptography": "cryptography==46.0.3",
    "bcrypt": "bcrypt==4.3.0", "pillow": "pillow==11.3.0", "lxml": "lxml==6.0.2", "grpcio": "grpcio==1.76.0",
    "pydantic-core": "pydantic-core==2.41.5", "pywin32": "pywin32==311", "zstandard": "zstandard==0.25.0",
    "greenlet": "greenlet==3.2.4", "msgpack": "msgpack==1.1.2", "orjson": "orjson==3.11.4",
    "scipy": "scipy==1.16.3", "markupsafe": "markupsafe==3.0.3",
}  # fmt: skip
SPEC = {
    "musllinux_1_2_x86_64": {
        "3.11": ["numpy", "pandas", "cryptography", "bcrypt", "pillow", "lxml", "zstandard", "greenlet"],
        "3.13": ["numpy", "pydantic-core", "orjson", "msgpack", "grpcio", "pillow", "markupsafe"],
    },
    "musllinux_1_2_aarch64": {
        "3.11": ["numpy", "pandas", "cryptography", "bcrypt", "pydantic-core", "zstandard", "greenlet"],
        "3.13": ["numpy", "pandas", "lxml", "orjson", "msgpack", "pillow", "markupsafe"],
    },
    "manylinux_2_28_aarch64": {
        "3.11": ["numpy", "scipy", "pandas", "lxml", "grpcio", "greenlet", "markupsafe"],
        "3.13": ["numpy", "cryptography", "pydantic-core", "pillow", "zstandard", "orjson"],
    },
    "win_amd64": {
        "3.11": ["numpy", "pandas", "pillow", "cryptography", "bcrypt", "pywin32", "zstandard", "greenlet", "lxml"],
        "3.13": ["numpy", "pydantic-core", "pywin32", "orjson", "msgpack", "pillow", "markupsafe"],
    },
}  # fmt: skip
# The quick slice the tests run: small wheels on the fastest runtimes, each showing one of smoke's duties
# (a test package left out, an optional backend skipped, a dependency installed).
QUICK = (
    ("musllinux_1_2_x86_64", "3.11", "zstandard"),
    ("musllinux_1_2_x86_64", "3.11", "greenlet"),
    ("musllinux_1_2_x86_64", "3.13", "pydantic-core"),
)


@dataclass(frozen=True)
class Entry:
    filename: str
    project: str
    version: str
    sha256: str
    target: str
    python: str
    language: str

    def path(self) -> Path:
        return fetch(Pin(self.filename, self.sha256, project=self.project, version=self.version))


def load_manifest() -> list[Entry]:
    data = json.loads(MANIFEST.read_text(encoding="utf-8"))
    return [
        Entry(w["filename"], w["project"], w["version"], w["sha256"], w["target"], w["python"], w["language"])
        for w in data["wheels"]
    ]


def quick_entries(entries: list[Entry]) -> list[Entry]:
    return [e for e in entries if (e.target, e.python, e.project) in QUICK]


def pin() -> list[dict[str, str]]:
    """Resolve SPEC with uv for each target and Python: the wheels (name, version, file, sha256) to smoke."""
    from pipeline.gaps import UPSTREAM_WHEEL, classify, resolve, target_tags
    from pipeline.targets import get_target

    wheels = []
    for target_name, pythons in SPEC.items():
        target = get_target(target_name)
        for python, projects in pythons.items():
            with tempfile.TemporaryDirectory() as tmp:
                requirements = Path(tmp) / "requirements.txt"
                requirements.write_text("\n".join(_PINS[p] for p in projects) + "\n", encoding="utf-8")
                tags = target_tags(target, python)
                for package in resolve(requirements, target, python, no_deps=True):
                    gap = classify(package, tags)
                    if gap.status != UPSTREAM_WHEEL or gap.file is None:
                        raise SystemExit(
                            f"{gap.name} {gap.version}: no binary wheel for {target_name} {python}"
                        )
                    wheels.append({
                        "filename": gap.file.filename, "project": gap.name, "version": gap.version,
                        "sha256": gap.file.sha256, "target": target_name, "python": python,
                        "language": _LANGUAGES[gap.name],
                    })  # fmt: skip
    return wheels


def smoke_one(entry: Entry) -> dict[str, object]:
    from pipeline.errors import RewheelError
    from pipeline.log import log
    from pipeline.smoke import smoke_wheel

    started = time.monotonic()
    try:
        with log.muted():  # one line per wheel comes from run() below
            result = smoke_wheel(entry.path(), entry.target).to_json()
    except RewheelError as exc:
        # the harness could not even set the wheel up: counted as FAILED, never hidden
        # (with the wheel and target a smoke result names, so the report below can list it like the others)
        result = {
            "wheel": entry.filename, "target": entry.target, "status": "failed", "message": f"smoke error: {exc}",
            "skipped": [], "dependencies": [],
        }  # fmt: skip
    result["seconds"] = round(time.monotonic() - started, 1)
    result["python_cell"] = entry.python
    result["language"] = entry.language
    return result


def run(quick: bool = False, progress: bool = True) -> dict[str, object]:
    entries = load_manifest()
    corpus = quick_entries(entries) if quick else entries
    results = []
    for number, entry in enumerate(corpus, 1):
        result = smoke_one(entry)
        results.append(result)
        if progress:
            print(
                f"[{number}/{len(corpus)}] {entry.filename} [{entry.target}]: {str(result['status']).upper()} "
                f"({result['seconds']} s) {result.get('message', '')}"[:400],
                file=sys.stderr,
                flush=True,
            )
    per_target: dict[str, Counter[str]] = defaultdict(Counter)
    for entry, result in zip(corpus, results, strict=True):
        per_target[f"{entry.target} / {entry.python}"][str(result["status"])] += 1
    totals = Counter(str(r["status"]) for r in results)
    return {
        "wheels": len(results),
        "passed": totals["passed"],
        "failed": totals["failed"],
        "cannot_host": totals["cannot-host"],
        "per_target": {k: dict(v) for k, v in sorted(per_target.items())},
        "languages": dict(sorted(Counter(e.language for e in corpus).items())),
        "results": results,
    }


def _short_reason(message: str) -> str:
    """ "the runtime lacks tkinter: ... (PIL._imagingtk: ...)" -> "the runtime lacks tkinter"."""
    reason = message.split(" (")[0]
    if reason.startswith("the runtime lacks "):
        reason = reason.split(":")[0]
    return reason[:120]


def closing_line(summary: dict[str, object]) -> str:
    reasons = Counter(
        _short_reason(str(r.get("message", "")))
        for r in summary["results"]  # type: ignore[attr-defined]
        if r["status"] == "cannot-host"
    )
    why = "; ".join(f"{n}x {reason}" for reason, n in reasons.most_common())
    return (
        f"smoke corpus: {summary['wheels']} wheels, {summary['passed']} passed, {summary['failed']} FAILED, "
        f"{summary['cannot_host']} cannot-host ({why or 'none'})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the small slice the tests run")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--pin", action="store_true", help="resolve SPEC again and rewrite the data file")
    args = parser.parse_args()
    if args.pin:
        wheels = pin()
        MANIFEST.write_text(json.dumps({"spec": SPEC, "wheels": wheels}, indent=1) + "\n", encoding="utf-8")
        print(f"{MANIFEST}: {len(wheels)} wheels")
        return 0
    summary = run(args.quick)
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    for cell, counts in summary["per_target"].items():  # type: ignore[attr-defined]
        print(f"{cell}: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    for result in summary["results"]:  # type: ignore[attr-defined]
        status = str(result["status"])
        if status != "passed":
            print(f"  {status.upper()} {result['wheel']} [{result['target']}]: {result['message']}"[:600])
        for skipped in result.get("skipped", []):
            print(f"  skipped {skipped['module']} in {result['wheel']}: {skipped['reason']}")
    print(closing_line(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
