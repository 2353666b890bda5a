"""Benchmark (issue #26): the first `nox -s build-musl` of a newcomer, three ways side by side.

The job is what `nox -s build-musl` runs: `rewheel build --target musllinux_1_2_x86_64 --target
musllinux_1_2_aarch64` over recipes/ (all 28 jobs, smoke on), into a wheelhouse of its own. Legs:

- cold: rewheel's, pip's and uv's caches all new and empty (REWHEEL_CACHE_DIR, XDG_CACHE_HOME, PIP_CACHE_DIR,
  UV_CACHE_DIR): every runtime, musl dependency and zig target cache is built here;
- imported: the same empty caches, but REWHEEL_RUNTIME_SOURCE points at a static http server on 127.0.0.1
  over a folder of exported archives (`rewheel runtimes export`: the four musl CPythons, their libz.so.1
  builds, the musl deps, zig's cache, the zig backend's native libraries, the Rust std sysroots), as a
  team's release assets or private index would serve them (exported from a cache that ran the job once, so
  zig's cache, the native libraries and the std sysroots cover every job);
- warm: the imported leg's caches and wheelhouse again: the no-op.

The cold leg is broken down by step: every "<what>: <step> done in N s" line the runtime builds print, and
every job's seconds from the run's JSON. The load average is printed with each leg, since the machine may be
shared. Run: `python benchmarks/cold_start.py [--legs imported,warm] [--archives DIR] [--json]`; with no
--archives the archives are exported from the cold leg's cache (or, without a cold leg, from the current
cache, which must then hold everything the job builds).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TARGETS = ("musllinux_1_2_x86_64", "musllinux_1_2_aarch64")
ARCHIVES = (
    "musl-cpython-3.11-x86_64",
    "musl-cpython-3.13-x86_64",
    "musl-cpython-3.11-aarch64",
    "musl-cpython-3.13-aarch64",
    "musl-zlib-x86_64",
    "musl-zlib-aarch64",
    "musl-deps-x86_64",
    "musl-deps-aarch64",
    "zig-cache",
    "native-libraries",
    "rust-std",
)
STEP = re.compile(r"^(?P<what>[\w.+-]+): (?P<step>.+?) done in (?P<seconds>\d+(?:\.\d+)?) s$")


def rewheel(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pipeline", *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)


def fresh_env(root: Path, source: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REWHEEL_RUNTIME_SOURCE"}
    for name, sub in (
        ("REWHEEL_CACHE_DIR", "rewheel"),
        ("XDG_CACHE_HOME", "xdg"),
        ("PIP_CACHE_DIR", "pip"),
        ("UV_CACHE_DIR", "uv"),
    ):
        (root / sub).mkdir(parents=True, exist_ok=True)
        env[name] = str(root / sub)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    if source:
        env["REWHEEL_RUNTIME_SOURCE"] = source
    return env


def run_leg(name: str, root: Path, env: dict[str, str]) -> dict[str, Any]:
    load_before = os.getloadavg()
    started = time.monotonic()
    targets = [arg for target in TARGETS for arg in ("--target", target)]
    result = rewheel("build", *targets, "--json", "--wheelhouse", str(root / "wheelhouse"), env=env)
    seconds = time.monotonic() - started
    (root / f"{name}.stderr.log").write_text(result.stderr, encoding="utf-8")
    try:
        summary = json.loads(result.stdout)
    except ValueError:
        summary = {}
    jobs = summary.get("jobs") or []
    steps = [m.groupdict() for m in map(STEP.match, result.stderr.splitlines()) if m]
    return {
        "leg": name,
        "seconds": round(seconds, 1),
        "exit": result.returncode,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "ok": summary.get("ok"),
        "failed": summary.get("failed"),
        "imported_by_target": summary.get("imported_by_target"),
        "not_imported": summary.get("not_imported"),
        "built": sum(1 for j in jobs if isinstance(j, dict) and j.get("status") == "built"),
        "up_to_date": sum(1 for j in jobs if isinstance(j, dict) and j.get("status") == "up-to-date"),
        "jobs": [
            {"id": j.get("job"), "status": j.get("status"), "seconds": j.get("seconds")}
            for j in jobs
            if isinstance(j, dict)
        ],
        "steps": steps,
        "imported_from_source": [line for line in result.stderr.splitlines() if "imported from" in line],
        "stderr_log": str(root / f"{name}.stderr.log"),
    }


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--legs", default="cold,imported,warm", help="comma-separated: cold, imported, warm")
    parser.add_argument("--archives", type=Path, help="a folder of exported archives (default: export now)")
    parser.add_argument("--work", type=Path, help="where the legs' caches go (default: a new temp folder)")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    legs = [leg.strip() for leg in options.legs.split(",") if leg.strip()]
    work = options.work or Path(tempfile.mkdtemp(prefix="rewheel-cold-start-"))
    work.mkdir(parents=True, exist_ok=True)
    results = []
    archives = options.archives
    exported_from: dict[str, str] | None = None
    if "cold" in legs:
        cold_env = fresh_env(work / "cold", None)
        results.append(run_leg("cold", work / "cold", cold_env))
        print(f"cold: {results[-1]['seconds']} s", file=sys.stderr, flush=True)
        # What a team does: the first machine that ran the job exports what it built, the others take it.
        exported_from = cold_env
    if ("imported" in legs or "warm" in legs) and archives is None:
        archives = work / "archives"
        started = time.monotonic()
        export = rewheel(
            "runtimes", "export", *ARCHIVES, "--out", str(archives), env=exported_from or dict(os.environ)
        )
        if export.returncode != 0:
            print(export.stderr, file=sys.stderr)
            return 2
        print(
            f"exported {len(ARCHIVES)} archives in {time.monotonic() - started:.0f} s "
            f"({sum(f.stat().st_size for f in archives.glob('*.tar.xz')) >> 20} MiB)",
            file=sys.stderr,
            flush=True,
        )
    if "imported" in legs or "warm" in legs:
        assert archives is not None
        server, url = serve(archives)
        try:
            env = fresh_env(work / "imported", url)
            if "imported" in legs:
                results.append(run_leg("imported", work / "imported", env))
                print(f"imported: {results[-1]['seconds']} s", file=sys.stderr, flush=True)
            if "warm" in legs:
                results.append(run_leg("warm", work / "imported", env))
        finally:
            server.shutdown()
    if options.json:
        print(json.dumps({"work": str(work), "legs": results}, indent=2))
        return 0
    print(f"{'leg':<10} {'seconds':>8} {'exit':>5}  load (1/5/15 min) before -> after")
    for leg in results:
        before = "/".join(map(str, leg["load_average_before"]))
        after = "/".join(map(str, leg["load_average_after"]))
        print(f"{leg['leg']:<10} {leg['seconds']:>8} {leg['exit']:>5}  {before} -> {after}")
        print(f"           {leg['built']} built, {leg['up_to_date']} up to date, failed: {leg['failed']}")
        groups = leg["imported_by_target"] or []
        print(
            "           imported: "
            + ", ".join(f"{g['target']} {g['python']} {g['imported']}/{g['wheels']}" for g in groups)
        )
    for leg in results:
        if leg["leg"] == "cold":
            print("\ncold leg by step (runtime builds):")
            for step in leg["steps"]:
                print(f"  {step['what']:<32} {step['step']:<28} {step['seconds']:>6} s")
        print(f"\n{leg['leg']} leg by job:")
        for job in sorted(leg["jobs"], key=lambda j: -(j["seconds"] or 0)):
            print(f"  {job['id']!s:<60} {job['status']!s:<10} {job['seconds'] or 0:>7.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
