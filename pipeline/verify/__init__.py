"""The symbol checker: predicts, from a wheel's binaries alone, the loader errors users meet on a target.

`verify_wheel(wheel, target)` reads the wheel once (every member read once, each binary parsed once, in
bounded memory, within unpack's size and ratio limits) and returns a WheelReport of findings (see
docs/verify.md for the codes). It raises RewheelError for unusable input: an unknown target, a file that is
not a wheel, a corrupt or oversized archive, a malformed ELF or PE binary.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.util import sha256_file
from pipeline.verify.report import Finding, Severity, WheelReport

__all__ = ["Finding", "WheelReport", "verify_wheel"]

_EXTENSION_SUFFIXES = (".so", ".pyd")


def verify_wheel(wheel: Path, target: str) -> WheelReport:
    from pipeline.errors import RewheelError
    from pipeline.targets import get_target
    from pipeline.verify.archive import read_wheel
    from pipeline.verify.tags import check_extension_name, check_platform, effective_policy, python_claim

    resolved = get_target(target)
    wheel = Path(wheel)
    if not wheel.is_file():
        raise RewheelError(f"{wheel}: no such file")
    report = WheelReport(wheel=wheel.name, target=resolved.name, sha256=sha256_file(wheel))
    contents = read_wheel(wheel, report)
    report.binaries = len(contents.elf) + len(contents.pe)
    tags = contents.filename_tags
    check_platform(resolved, tags, report)
    claim = python_claim(tags)
    pure = {t.platform for t in tags} == {"any"}
    for name in sorted(contents.members):
        if name.endswith(_EXTENSION_SUFFIXES):
            check_extension_name(name, claim, report)
    if pure:
        for name in sorted(set(contents.elf) | set(contents.pe)):
            if name.endswith(_EXTENSION_SUFFIXES):
                report.add(
                    "tag-mismatch",
                    f"{name} is a compiled extension in a wheel tagged {', '.join(sorted(str(t) for t in tags))}: pure wheels install everywhere, the binary loads on one platform",
                    file=name,
                )
        return report
    if resolved.is_linux:
        from pipeline.verify.linux import check_elf_binaries

        for name in sorted(contents.pe):
            severity: Severity = "error" if name.lower().endswith(".pyd") else "warning"
            report.add(
                "wrong-os",
                f"{name} is a Windows binary in a wheel for {resolved.name}",
                file=name,
                severity=severity,
            )
        policy = effective_policy(resolved, tags)
        check_elf_binaries(resolved, contents, claim, policy[0] if policy else None, report)
    elif resolved.is_windows:
        from pipeline.verify.windows import check_pe_binaries

        for name in sorted(contents.elf):
            severity = "error" if name.endswith(".so") else "warning"
            report.add(
                "wrong-os",
                f"{name} is a Linux (ELF) binary in a wheel for {resolved.name}",
                file=name,
                severity=severity,
            )
        check_pe_binaries(resolved, contents, claim, report)
    return report
