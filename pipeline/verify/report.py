"""What the symbol checker reports: findings and the per-wheel report (the JSON shape docs/verify.md describes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    severity: Severity
    code: str
    file: str | None
    library: str | None
    symbol: str | None
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "code": self.code,
            "file": self.file,
            "library": self.library,
            "symbol": self.symbol,
            "message": self.message,
        }


@dataclass
class WheelReport:
    wheel: str
    target: str
    findings: list[Finding] = field(default_factory=list)
    binaries: int = 0  # binaries checked (ELF + PE)
    sha256: str | None = (
        None  # of the file verified: publish --verified-by takes a verdict for these bytes only
    )

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    def add(
        self,
        code: str,
        message: str,
        *,
        file: str | None = None,
        library: str | None = None,
        symbol: str | None = None,
        severity: Severity = "error",
    ) -> None:
        self.findings.append(Finding(severity, code, file, library, symbol, message))

    def to_json(self) -> dict[str, Any]:
        return {
            "wheel": self.wheel,
            "target": self.target,
            "ok": self.ok,
            "findings": [f.to_json() for f in self.findings],
            "binaries_checked": self.binaries,
            "sha256": self.sha256,
        }
