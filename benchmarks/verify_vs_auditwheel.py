"""Measure `rewheel verify` against `auditwheel show` and a plain decompress, on the same real wheels.

Each tool runs as a whole process (interpreter start included, as users meet it), the three tools
interleaved round by round so machine noise hits them alike; wall time, CPU time (user+sys of that child,
from wait4) and peak memory are recorded and medians reported, with the ratios the symbol checker is held
to: auditwheel/verify CPU (goal >= 10x) and verify/decompress CPU (goal <= 3x).

rewheel's modules are byte-compiled first, as a pip install does (auditwheel's are): where
PYTHONDONTWRITEBYTECODE is set, an editable checkout would otherwise recompile every module on every run.

    python benchmarks/verify_vs_auditwheel.py [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

WHEELS = [
    ("numpy", "2.2.6", "numpy-2.2.6-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
     "ba10f8411898fc418a521833e014a77d3ca01c15b0c6cdcce6a0d2897e6dbbdf", "manylinux_2_17_x86_64"),
    ("scipy", "1.16.3", "scipy-1.16.3-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
     "0151a0749efeaaab78711c78422d413c583b8cdd2011a3c1d6c794938ee9fdb2", "manylinux_2_17_x86_64"),
    ("pyarrow", "20.0.0", "pyarrow-20.0.0-cp311-cp311-manylinux_2_28_x86_64.whl",
     "a6ad3e7758ecf559900261a4df985662df54fb7fdb55e8e3b3aa99b23d526b62", "manylinux_2_28_x86_64"),
]  # fmt: skip

DECOMPRESS = "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nfor i in z.infolist():\n    z.read(i)\n"


def timed(command: list[str]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS in MiB) of one whole-process run, for that child alone."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert process.stderr is not None
    err = process.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0, 1):  # verify exits 1 on findings; anything else is a broken run
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}): {err.strip()[-500:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--only", help="comma-separated project names (numpy,scipy,pyarrow)")
    args = parser.parse_args()

    import compileall

    import pipeline
    from pipeline.fetch import Pin, fetch

    compileall.compile_dir(os.path.dirname(pipeline.__file__), quiet=1)

    auditwheel = shutil.which("auditwheel")
    audit_command = [auditwheel] if auditwheel else [sys.executable, "-m", "auditwheel"]
    selected = [w for w in WHEELS if not args.only or w[0] in args.only.split(",")]
    rows = []
    for project, version, filename, sha256, target in selected:
        wheel = fetch(Pin(filename=filename, sha256=sha256, project=project, version=version))
        tools = {
            "rewheel verify": [
                sys.executable,
                "-m",
                "pipeline",
                "verify",
                str(wheel),
                "--target",
                target,
                "--quiet",
            ],
            "auditwheel show": [*audit_command, "show", str(wheel)],
            "decompress": [sys.executable, "-c", DECOMPRESS, str(wheel)],
        }
        samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in tools}
        for round_number in range(args.repeat):
            for name, command in tools.items():
                samples[name].append(timed(command))
            print(f"{project}: round {round_number + 1}/{args.repeat}", file=sys.stderr, flush=True)
        medians = {
            name: {
                "wall": statistics.median(s[0] for s in runs),
                "cpu": statistics.median(s[1] for s in runs),
                "peak_rss_mib": statistics.median(s[2] for s in runs),
            }
            for name, runs in samples.items()
        }
        verify, audit, unzip = medians["rewheel verify"], medians["auditwheel show"], medians["decompress"]
        rows.append(
            {
                "wheel": filename,
                "size_mb": round(wheel.stat().st_size / 1e6, 1),
                "medians": medians,
                "auditwheel_over_verify_cpu": audit["cpu"] / verify["cpu"],
                "auditwheel_over_verify_wall": audit["wall"] / verify["wall"],
                "verify_over_decompress_cpu": verify["cpu"] / unzip["cpu"],
                "verify_over_decompress_wall": verify["wall"] / unzip["wall"],
            }
        )
    info = {"repeat": args.repeat, "cpus": os.cpu_count(), "load_average": os.getloadavg(), "results": rows}
    if args.json:
        print(json.dumps(info, indent=2))
        return
    print(
        f"medians of {args.repeat} interleaved runs; cpus={os.cpu_count()}, load average {os.getloadavg()[0]:.1f}"
    )
    header = f"{'wheel':<10}{'MB':>6}  {'verify wall/cpu':>16}  {'auditwheel wall/cpu':>20}  {'decompress wall/cpu':>20}  {'aw/verify cpu':>13}  {'verify/unzip cpu':>16}  {'verify/aw RSS':>15}"
    print(header)
    for row in rows:
        m = row["medians"]

        def pair(name: str, m=m) -> str:  # type: ignore[no-untyped-def]
            return f"{m[name]['wall']:.2f}/{m[name]['cpu']:.2f}s"

        print(
            f"{row['wheel'].split('-')[0]:<10}{row['size_mb']:>6}  {pair('rewheel verify'):>16}  {pair('auditwheel show'):>20}  "
            f"{pair('decompress'):>20}  {row['auditwheel_over_verify_cpu']:>12.1f}x  {row['verify_over_decompress_cpu']:>15.2f}x"
            f"  {m['rewheel verify']['peak_rss_mib']:>6.0f}/{m['auditwheel show']['peak_rss_mib']:.0f} MiB"
        )


if __name__ == "__main__":
    main()
