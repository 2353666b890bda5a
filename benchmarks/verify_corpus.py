"""`rewheel verify` on a corpus of real compiled wheels: false alarms, known-bad cases caught, CPU time.

The corpus is benchmarks/data/verify_corpus.json (filename, project, version, sha256 per wheel, chosen by
benchmarks/verify_corpus_build.py): wheels from PyPI for manylinux2014 / 2_28, musllinux 1_1 / 1_2 on x86_64
and aarch64, win_amd64, win_arm64, win32, abi3 and free-threaded builds, CPython 3.9 to 3.14, with C, C++,
Cython, Rust and Fortran extensions. Each is fetched once through rewheel's fetch layer (pip, hash-checked,
cached) and checked on the platform its own tags name (`--target auto`: every level a compound tag claims,
the oldest deciding), musl ones on the default profile (every supported Alpine release, musl 1.2.5). These
wheels load where they claim to, so every error finding is a false alarm. Wheels the manifest records with a
`legacy_musl_defect` (grafted libraries with DT_RELR) are also checked on the legacy musl 1.2.3 target of
their tag, where they crash at load: the finding must be there.

Known-bad cases are made from real corpus wheels (deterministic rewrites, nothing invented): a glibc 2.28
wheel retagged to claim manylinux1/2_5 too, a glibc wheel retagged musllinux, an aarch64 wheel retagged
x86_64, a cp312 Windows wheel retagged cp311 (its .pyd still imports python312.dll), a cp312 Linux wheel
retagged abi3 (it uses non-stable-ABI symbols), upstream Pillow checked on win_amd64-nanoserver, and a
DT_RELR wheel on its musl 1.2.3 target.

CPU time: `rewheel verify` and `auditwheel show` run as whole processes on every Linux wheel.

    python benchmarks/verify_corpus.py [--quick] [--no-auditwheel] [--json]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import resource
import subprocess
import sys
import time
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pipeline.fetch import Pin, fetch
from pipeline.targets import musl_profiles, parse_platform, targets_for_tags
from pipeline.verify import verify_wheel
from pipeline.verify.wheelname import wheel_tags

MANIFEST = Path(__file__).resolve().parent / "data" / "verify_corpus.json"
# The quick slice the tests run: small wheels covering each class, and the sources of every bad case.
QUICK = (
    "markupsafe-3.0.4-cp310-cp310-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl",
    "markupsafe-3.0.4-cp311-cp311-manylinux2014_aarch64.manylinux_2_17_aarch64.manylinux_2_28_aarch64.whl",
    "MarkupSafe-2.1.5-cp39-cp39-musllinux_1_1_x86_64.whl",
    "markupsafe-3.0.4-cp312-cp312-musllinux_1_2_aarch64.whl",
    "markupsafe-3.0.4-cp311-cp311-win_amd64.whl",
    "markupsafe-3.0.4-cp312-cp312-win_arm64.whl",
    "markupsafe-3.0.4-cp310-cp310-win32.whl",
)


@dataclass(frozen=True)
class Entry:
    filename: str
    project: str
    version: str
    sha256: str
    language: str
    # a real upstream wheel found broken, with independent evidence: the finding code it must get
    upstream_defect: str | None = None
    # broken only on a legacy musl profile (name, finding code): clean on the default one
    legacy_musl_defect: tuple[str, str] | None = None

    def path(self) -> Path:
        return fetch(Pin(self.filename, self.sha256, project=self.project, version=self.version))


def load_manifest() -> list[Entry]:
    data = json.loads(MANIFEST.read_text(encoding="utf-8"))
    return [
        Entry(
            w["filename"],
            w["project"],
            w["version"],
            w["sha256"],
            w["language"],
            (w.get("upstream_defect") or {}).get("code"),
            (w["legacy_musl_defect"]["profile"], w["legacy_musl_defect"]["code"])
            if w.get("legacy_musl_defect")
            else None,
        )
        for w in data["wheels"]
    ]


def classes(filename: str) -> list[str]:
    """The corpus classes a wheel counts in: its platform (for Linux the oldest level it claims, the one it
    is checked against), ABI (abi3, free-threaded) and CPython version."""
    tags = wheel_tags(filename)
    found = set()
    oldest: dict[tuple[str, str], tuple[int, int]] = {}
    for platform in {t.platform for t in tags}:
        parsed = parse_platform(platform)
        if parsed:
            key = (parsed.family, parsed.arch)
            oldest[key] = min(oldest.get(key, parsed.level), parsed.level)
        elif platform.startswith("win"):
            found.add(platform)
    for (family, arch), (major, minor) in oldest.items():
        level = (
            "manylinux2014" if (family, major, minor) == ("manylinux", 2, 17) else f"{family}_{major}_{minor}"
        )
        found.add(f"{level}_{arch}")
    abis = {t.abi for t in tags}
    if "abi3" in abis:
        found.add("abi3")
    if any(re.match(r"cp\d+t$", a) for a in abis):
        found.add("free-threaded")
    for interpreter in {t.interpreter for t in tags}:
        if m := re.match(r"cp3(\d+)$", interpreter):
            found.add(f"python 3.{m[1]}{'+' if 'abi3' in abis else ''}")
    return sorted(found)


def check(path: Path, targets: list[str] | None = None) -> tuple[list[dict[str, object]], float]:
    """Reports (as JSON) for the wheel on its own targets, and the CPU seconds verify took in-process."""
    start = time.process_time()
    chosen = targets or [t.name for t in targets_for_tags(wheel_tags(path.name))]
    reports = [verify_wheel(path, t).to_json() for t in chosen]
    return reports, time.process_time() - start


def legacy_targets(filename: str, profile: str) -> list[str]:
    """The wheel's own targets on a legacy musl profile (the channel that profile publishes to)."""
    channel = musl_profiles()[profile].channel
    return [t.name for t in targets_for_tags(wheel_tags(filename), channel) if t.profile == profile]


def child_cpu(command: list[str]) -> tuple[float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), result.returncode


# ---- known-bad cases made from real wheels ---------------------------------------------------------------


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def rewrite(source: Path, out_dir: Path, new_tag: str, rename: tuple[str, str] | None = None) -> Path:
    """A copy of a wheel with its tag triple replaced (file name and WHEEL's Tag lines) and, optionally, a
    suffix of its extension modules renamed; RECORD rewritten to match. Deterministic (fixed timestamps)."""
    name_part = "-".join(source.name[: -len(".whl")].split("-")[:-3])
    target = out_dir / f"{name_part}-{new_tag}.whl"
    interpreter, abi, platforms = new_tag.split("-")
    tag_lines = "".join(
        f"Tag: {i}-{a}-{p}\n"
        for i in interpreter.split(".")
        for a in abi.split(".")
        for p in platforms.split(".")
    )
    members: list[tuple[str, bytes]] = []
    with zipfile.ZipFile(source) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue  # directory entries are not files: RECORD never lists them
            data = archive.read(info)
            name = info.filename
            if rename and name.endswith(rename[0]):
                name = name[: -len(rename[0])] + rename[1]
            if name.endswith(".dist-info/WHEEL"):
                kept = [ln for ln in data.decode().splitlines(keepends=True) if not ln.startswith("Tag:")]
                data = ("".join(kept).rstrip("\n") + "\n" + tag_lines).encode()
            members.append((name, data))
    record = next(n for n, _ in members if n.endswith(".dist-info/RECORD"))
    lines = [_record_line(n, d) for n, d in members if n != record] + [f"{record},,"]
    out_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        for name, data in members:
            if name == record:
                data = ("\n".join(lines) + "\n").encode()
            out.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), data, zipfile.ZIP_DEFLATED)
    return target


@dataclass(frozen=True)
class BadCase:
    name: str
    wheel: Path
    target: str  # "auto" or a target name
    expected: str  # finding code that names the problem


def _pick(entries: list[Entry], pattern: str) -> Entry | None:
    return next((e for e in entries if re.search(pattern, e.filename)), None)


def _python(entry: Entry) -> str:
    return entry.filename.split("-")[-3]


def bad_cases(entries: list[Entry], work: Path) -> list[BadCase]:
    cases = []
    # a wheel whose binaries need a newer glibc (a manylinux_2_28 one first) retagged to also claim manylinux1
    linux = [e for e in entries if re.search(r"-cp3\d+-cp3\d+-manylinux[\w.]*x86_64\.whl$", e.filename)]
    linux.sort(key=lambda e: ("manylinux2014" in e.filename or "2_17" in e.filename, e.filename))
    for entry in linux:
        reports, _ = check(entry.path(), ["manylinux_2_5_x86_64"])
        if any(f["code"] == "too-new-symbol-version" for r in reports for f in r["findings"]):
            platforms = entry.filename[: -len(".whl")].split("-")[-1]
            tag = f"{_python(entry)}-{_python(entry)}-manylinux1_x86_64.manylinux_2_5_x86_64.{platforms}"
            cases.append(BadCase("newer-glibc wheel also claiming manylinux1/2_5 (compound tag)",
                                 rewrite(entry.path(), work, tag), "auto", "too-new-symbol-version"))  # fmt: skip
            break
    if linux:
        glibc = linux[-1]
        py = _python(glibc)
        cases.append(BadCase("glibc wheel claiming musllinux_1_2", rewrite(glibc.path(), work, f"{py}-{py}-musllinux_1_2_x86_64"),
                             "auto", "glibc-on-musl"))  # fmt: skip
    arm = _pick(entries, r"-cp3\d+-cp3\d+-manylinux[\w.]*aarch64\.whl$")
    if arm:
        py = _python(arm)
        cases.append(BadCase("aarch64 wheel claiming x86_64", rewrite(arm.path(), work, f"{py}-{py}-manylinux_2_17_x86_64"),
                             "auto", "wrong-machine"))  # fmt: skip
    windows = _pick(entries, r"-cp31[0-4]-cp31[0-4]-win_amd64\.whl$")
    if windows:
        py = _python(windows)
        older = f"cp3{int(py[3:]) - 1}"
        cases.append(BadCase(f"{py} .pyd retagged {older} (imports python{py[2:]}.dll)",
                             rewrite(windows.path(), work, f"{older}-{older}-win_amd64", (f".{py}-win_amd64.pyd", f".{older}-win_amd64.pyd")),
                             "auto", "python-dll-mismatch"))  # fmt: skip
    for entry in linux:
        py = _python(entry)
        platform = entry.filename[: -len(".whl")].split("-")[-1]
        suffix = f".cpython-{py[2:]}-x86_64-linux-gnu.so"
        reports, _ = check(rewrite(entry.path(), work, f"{py}-abi3-{platform}", (suffix, ".abi3.so")))
        if any(f["code"] == "abi3-violation" for r in reports for f in r["findings"]):
            cases.append(BadCase("cpXY module retagged abi3 (fake abi3)",
                                 rewrite(entry.path(), work, f"{py}-abi3-{platform}", (suffix, ".abi3.so")),
                                 "auto", "abi3-violation"))  # fmt: skip
            break
    pillow = _pick(entries, r"^pillow-.*-win_amd64\.whl$")
    if pillow:
        cases.append(
            BadCase(
                "upstream Pillow on Nano Server", pillow.path(), "win_amd64-nanoserver", "missing-function"
            )
        )
    relr = _smallest_legacy_defect(entries)
    if relr and relr.legacy_musl_defect:
        profile, code = relr.legacy_musl_defect
        (target,) = legacy_targets(relr.filename, profile)
        cases.append(BadCase(f"DT_RELR wheel on the musl {target.rpartition('-musl')[2]} profile", relr.path(),
                             target, code))  # fmt: skip
    return cases


def _smallest_legacy_defect(entries: list[Entry]) -> Entry | None:
    found = [e for e in entries if e.legacy_musl_defect]
    sizes = {
        w["filename"]: w.get("size", 0) for w in json.loads(MANIFEST.read_text(encoding="utf-8"))["wheels"]
    }
    return min(found, key=lambda e: (sizes.get(e.filename, 0), e.filename)) if found else None


def run(quick: bool, with_auditwheel: bool, progress: bool = True) -> dict[str, object]:
    import shutil

    entries = load_manifest()
    corpus = [e for e in entries if e.filename in QUICK] if quick else entries
    # the quick slice makes its bad cases from its own wheels, plus upstream Pillow for Nano Server and the
    # smallest DT_RELR wheel for the musl 1.2.3 profile
    pillow = [e for e in entries if re.match(r"^pillow-.*-win_amd64\.whl$", e.filename)][:1]
    relr = _smallest_legacy_defect(entries)
    sources = corpus + pillow + ([relr] if relr else []) if quick else corpus
    alarms: list[dict[str, object]] = []
    defects: list[dict[str, object]] = []
    legacy: list[dict[str, object]] = []
    counts: Counter[str] = Counter()
    languages: Counter[str] = Counter()
    verify_cpu = 0.0
    linux: list[Path] = []
    for index, entry in enumerate(corpus, 1):
        path = entry.path()
        reports, cpu = check(path)
        verify_cpu += cpu
        for name in classes(entry.filename):
            counts[name] += 1
        languages[entry.language] += 1
        if "linux" in entry.filename:
            linux.append(path)
        errors = [f for r in reports for f in r["findings"] if f["severity"] == "error"]
        if entry.upstream_defect:
            # not a false alarm when the checker names the defect the manifest records (with its evidence)
            defects.append({"wheel": entry.filename, "expected": entry.upstream_defect,
                            "caught": any(f["code"] == entry.upstream_defect for f in errors)})  # fmt: skip
        elif errors:
            alarms.append({"wheel": entry.filename, "findings": errors[:5]})
        if entry.legacy_musl_defect:
            profile, code = entry.legacy_musl_defect
            on_legacy, _ = check(path, legacy_targets(entry.filename, profile))
            legacy.append({"wheel": entry.filename, "profile": profile, "expected": code,
                           "caught": bool(on_legacy) and all(
                               any(f["code"] == code and f["severity"] == "error" for f in r["findings"])
                               for r in on_legacy)})  # fmt: skip
        if progress:
            print(
                f"[{index}/{len(corpus)}] {entry.filename}: "
                f"{('upstream defect' if entry.upstream_defect else 'FALSE ALARM') if errors else 'ok'}",
                file=sys.stderr,
                flush=True,
            )
    work = Path(__import__("tempfile").mkdtemp(prefix="rewheel-corpus-bad-"))
    try:
        cases = []
        for case in bad_cases(sources, work):
            reports, _ = check(case.wheel, None if case.target == "auto" else [case.target])
            codes = sorted(
                {str(f["code"]) for r in reports for f in r["findings"] if f["severity"] == "error"}
            )
            cases.append({"case": case.name, "wheel": case.wheel.name, "target": case.target,
                          "expected": case.expected, "caught": case.expected in codes, "codes": codes,
                          "sha256": hashlib.sha256(case.wheel.read_bytes()).hexdigest()})  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    timing: dict[str, object] = {}
    if with_auditwheel and linux:
        rewheel_cpu = auditwheel_cpu = 0.0
        for path in linux:
            cpu, _ = child_cpu(
                [sys.executable, "-m", "pipeline", "verify", str(path), "--target", "auto", "-q"]
            )
            rewheel_cpu += cpu
            cpu, _ = child_cpu([sys.executable, "-m", "auditwheel", "show", str(path)])
            auditwheel_cpu += cpu
        timing = {"linux_wheels": len(linux), "rewheel_verify_cpu_s": round(rewheel_cpu, 2),
                  "auditwheel_show_cpu_s": round(auditwheel_cpu, 2),
                  "ratio": round(auditwheel_cpu / rewheel_cpu, 2) if rewheel_cpu else None}  # fmt: skip
    return {
        "wheels": len(corpus),
        "false_alarms": len(alarms),
        "false_alarm_wheels": alarms,
        "upstream_defects": defects,
        "legacy_profile_defects": legacy,
        "bad_cases": cases,
        "bad_caught": sum(1 for c in cases if c["caught"]),
        "classes": dict(sorted(counts.items())),
        "languages": dict(sorted(languages.items())),
        "verify_cpu_s_in_process": round(verify_cpu, 2),
        "cpu_vs_auditwheel": timing,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the small slice the tests run")
    parser.add_argument("--no-auditwheel", action="store_true", help="skip the CPU comparison")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.quick, not args.no_auditwheel)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"corpus: {result['wheels']} wheels; false alarms: {result['false_alarms']}")
    for alarm in result["false_alarm_wheels"]:  # type: ignore[attr-defined]
        print(
            f"  FALSE ALARM {alarm['wheel']}: "
            + "; ".join(f"[{f['code']}] {f['message'][:160]}" for f in alarm["findings"])
        )
    for defect in result["upstream_defects"]:  # type: ignore[attr-defined]
        print(
            f"  upstream defect {'caught' if defect['caught'] else 'MISSED'}: {defect['wheel']} ({defect['expected']})"
        )
    for item in result["legacy_profile_defects"]:  # type: ignore[attr-defined]
        print(
            f"  on {item['profile']}: {'caught' if item['caught'] else 'MISSED'}: {item['wheel']} ({item['expected']})"
        )
    print(f"known-bad cases caught: {result['bad_caught']} of {len(result['bad_cases'])}")  # type: ignore[arg-type]
    for case in result["bad_cases"]:  # type: ignore[attr-defined]
        print(
            f"  {'caught' if case['caught'] else 'MISSED'}: {case['case']} ({case['wheel']} on {case['target']}): {', '.join(case['codes'])}"
        )
    print("classes: " + ", ".join(f"{k}: {v}" for k, v in result["classes"].items()))  # type: ignore[attr-defined]
    print("languages: " + ", ".join(f"{k}: {v}" for k, v in result["languages"].items()))  # type: ignore[attr-defined]
    timing = result["cpu_vs_auditwheel"]
    if timing:
        print(
            f"CPU on {timing['linux_wheels']} Linux wheels (whole processes): rewheel verify {timing['rewheel_verify_cpu_s']} s, "  # type: ignore[index]
            f"auditwheel show {timing['auditwheel_show_cpu_s']} s ({timing['ratio']}x)"
        )  # type: ignore[index]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
