"""Index 10,000 small real wheels with rewheel's static index and with dumb-pypi, from scratch and after
adding one wheel; print times and ratios.

    python benchmarks/index_vs_dumb_pypi.py [--projects 2000] [--versions 5] [--workdir DIR] [--json]

The wheels are generated (minimal valid wheels: METADATA, WHEEL, RECORD, one module). What each side does:
- rewheel publish (scratch): reads every wheel, hashes it, extracts METADATA to <file>.metadata, copies the
  wheel into the index (fsync'd, renamed into place), writes the HTML + JSON pages, under the lock.
- rewheel rebuild, tree intact: re-index from the files alone (rereads and rehashes every wheel; writes
  only what differs, here nothing).
- rewheel rebuild, pages lost: the same after deleting simple/: every page is written again (the
  .metadata files are still there). The like-for-like with dumb-pypi's full run.
- rewheel add one: publish one more wheel into the 10,000-file index.
- dumb-pypi: renders HTML (and its JSON API) from a package list that already carries the hashes and
  Requires-Python; it never opens a wheel. Making that list (hash each wheel, read its METADATA for Requires-Python) is timed separately, since
  rewheel's rebuild does the same work. Incremental = its --previous-package-list-json mode. Run
  in-process (no interpreter start-up counted).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def dumb_pypi_line(wheel: Path) -> str:
    from pipeline.index.wheelinfo import read_wheel

    entry, _ = read_wheel(wheel)
    return json.dumps(
        {
            "filename": wheel.name,
            "hash": f"sha256={entry.sha256}",
            "requires_python": entry.requires_python,
            "core_metadata": f"sha256={entry.metadata_sha256}",
            "upload_timestamp": int(wheel.stat().st_mtime),
        }
    )


def run_dumb_pypi(package_list: Path, out: Path, previous: Path | None = None) -> None:
    from dumb_pypi.main import main as dumb_pypi_main

    argv = ["--package-list-json", str(package_list), "--output-dir", str(out), "--packages-url", "../../pool/",
            "--no-generate-timestamp", "--no-per-release-json"]  # fmt: skip
    if previous is not None:
        argv += ["--previous-package-list-json", str(previous)]
    code = dumb_pypi_main(argv)
    if code:
        raise SystemExit(f"dumb-pypi failed with {code}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=2000)
    parser.add_argument("--versions", type=int, default=5)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="default: a temporary folder, removed after"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    options = parser.parse_args()
    try:
        import dumb_pypi.main  # noqa: F401
    except ImportError:
        print("dumb-pypi is not installed: pip install 'rewheel[bench]'", file=sys.stderr)
        return 2

    from pipeline.index.static import StaticIndex, check_index, stage

    # The wheel generator is a test helper; the benchmarks run from the repository root.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.helpers.synthetic import make_wheel, make_wheels

    work = options.workdir or Path(tempfile.mkdtemp(prefix="index-bench-"))
    try:
        total = options.projects * options.versions
        print(f"generating {total} wheels ({options.projects} projects x {options.versions} versions) ...",
              file=sys.stderr)  # fmt: skip
        wheels = make_wheels(work / "wheels", options.projects, options.versions)
        extra = make_wheel(work / "extra", "pkg-7", "9.9.9", requires_python=">=3.8")
        results: dict[str, float] = {}

        index = StaticIndex(work / "index")
        results["rewheel publish, from scratch"] = timed(lambda: index.add([stage(w) for w in wheels]))
        results["rewheel add one wheel"] = timed(lambda: index.add([stage(extra)]))
        results["rewheel rebuild, tree intact"] = timed(index.rebuild)
        shutil.rmtree(index.root / "simple")
        results["rewheel rebuild, pages lost"] = timed(index.rebuild)
        problems = check_index(index.root)
        if problems:
            raise SystemExit(f"the index is inconsistent: {problems[:3]}")

        listing = work / "packages.jsonl"
        results["dumb-pypi's input: hash + METADATA"] = timed(
            lambda: listing.write_text("\n".join(dumb_pypi_line(w) for w in wheels) + "\n")
        )
        listing_plus = work / "packages-plus.jsonl"
        listing_plus.write_text(listing.read_text() + dumb_pypi_line(extra) + "\n")
        results["dumb-pypi, from scratch"] = timed(lambda: run_dumb_pypi(listing, work / "dumb"))
        results["dumb-pypi add one wheel"] = timed(
            lambda: run_dumb_pypi(listing_plus, work / "dumb", listing)
        )

        ratios = {
            "all pages from nothing: dumb-pypi / rewheel rebuild": results["dumb-pypi, from scratch"]
            / results["rewheel rebuild, pages lost"],
            "same, dumb-pypi incl. reading the wheels / rewheel rebuild": (
                results["dumb-pypi, from scratch"] + results["dumb-pypi's input: hash + METADATA"]
            )
            / results["rewheel rebuild, pages lost"],
            "from scratch: dumb-pypi / rewheel publish": results["dumb-pypi, from scratch"]
            / results["rewheel publish, from scratch"],
            "add one: dumb-pypi / rewheel": results["dumb-pypi add one wheel"]
            / results["rewheel add one wheel"],
        }
        if options.json:
            print(json.dumps({"wheels": total, "seconds": results, "ratios": ratios}, indent=2))
        else:
            print(f"{total} wheels, {options.projects} projects")
            for name, seconds in results.items():
                print(f"  {name:<36} {seconds:8.3f} s")
            for name, ratio in ratios.items():
                print(f"  {name:<60} {ratio:6.2f}x")
    finally:
        if options.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
