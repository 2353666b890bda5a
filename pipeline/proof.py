"""Proof records: what rewheel knows about one published file, as a JSON document served beside it.

A proof record (`<file>.proof.json`, shape in docs/index.md and pipeline/resources/proof.schema.json) says
where the file came from (built here from a pinned recipe, source and patches, or taken from an upstream
index by its sha256), what built and repaired it, what the symbol checker found for its target, and what
happened when it was imported on the target's runtime. It is made from evidence rewheel already has:
- a built wheel's build record (`<wheel>.build.json`, written by the orchestrator);
- an upstream wheel's own verify report and smoke result (`rewheel build -r` runs them);
- for any other wheel, the publish gate's verdict (the checker passed it; its findings were not kept).
Nothing in a record is recomputed when pages are rendered: the landing pages and `rewheel report` read it.
Records come partly from untrusted wheels (names, findings, command output): readers must escape them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import RewheelError
from pipeline.util import sha256_file

if TYPE_CHECKING:
    from pipeline.wheelhouse import UpstreamWheel

PROOF_SUFFIX = ".proof.json"
PROOF_FORMAT = 1
OUTPUT_EXCERPT_CHARS = 2000  # a test command's output, kept from its end (where failures are reported)
MAX_FINDINGS = 200  # per severity: a wheel with thousands of missing symbols still gets a readable record

BUILT = "built"
UPSTREAM = "upstream"
PUBLISHED = "published"  # neither built here nor admitted by build -r: only the publish gate's verdict


def proof_path(wheel: Path) -> Path:
    return wheel.with_name(wheel.name + PROOF_SUFFIX)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def excerpt(text: str | None, limit: int = OUTPUT_EXCERPT_CHARS) -> str:
    """The end of `text`, at most `limit` characters, marked when cut."""
    if not text:
        return ""
    if len(text) <= limit:
        return text
    return "[...]\n" + text[-limit:]


def _verify_entry(report: dict[str, Any] | None, target: str, how: str) -> dict[str, Any]:
    """One target profile's verify result: errors and warnings kept apart, bounded."""
    if not report:
        return {
            "target": target,
            "ok": None,
            "by": how,
            "findings": [],
            "warnings": [],
            "binaries_checked": None,
        }
    findings = [f for f in report.get("findings", []) if f.get("severity") == "error"]
    warnings = [f for f in report.get("findings", []) if f.get("severity") != "error"]
    keep = ("severity", "code", "file", "library", "symbol", "message")
    return {
        "target": str(report.get("target") or target),
        "ok": bool(report.get("ok")),
        "by": how,
        "findings": [{k: f.get(k) for k in keep} for f in findings[:MAX_FINDINGS]],
        "warnings": [{k: f.get(k) for k in keep} for f in warnings[:MAX_FINDINGS]],
        "binaries_checked": report.get("binaries_checked"),
    }


def _smoke_entry(smoke: dict[str, Any] | None, command: str | None) -> dict[str, Any]:
    smoke = smoke or {}
    status = str(smoke.get("status") or "not-run")
    return {
        "status": status,  # passed | failed | cannot-host | skipped | error | not-run
        "runtime": smoke.get("runtime"),
        "interpreter": smoke.get("python"),
        "imported": [str(m) for m in smoke.get("imported") or []],
        "command": command if status not in ("skipped", "not-run", "cannot-host") else None,
        "output": excerpt(smoke.get("output")),
        "failures": [
            {str(k): excerpt(str(v), 500) for k, v in failure.items()}
            for failure in smoke.get("failures") or []
        ],
        "message": str(smoke.get("message") or ""),
    }


def _file_facts(wheel: Path) -> dict[str, Any]:
    from packaging.utils import canonicalize_name, parse_wheel_filename

    name, version, _, _ = parse_wheel_filename(wheel.name)
    return {
        "filename": wheel.name,
        "sha256": sha256_file(wheel),
        "size": wheel.stat().st_size,
        "project": canonicalize_name(name),
        "version": str(version),
    }


def _shown_path(path: str | None) -> str | None:
    """A recipe's path relative to the project (recipes/x.toml), not the build machine's absolute path."""
    if not path:
        return path
    from pipeline.paths import project_root

    recipe = Path(path).resolve()
    try:
        return recipe.relative_to(project_root(recipe.parent)).as_posix()
    except ValueError:
        return recipe.name  # in no project folder: its name is what identifies it


def from_build_record(wheel: Path, record: dict[str, Any]) -> dict[str, Any]:
    """The proof of a wheel built here, from the build record the orchestrator wrote beside it."""
    facts = _file_facts(wheel)
    recorded = record.get("wheel") or {}
    if recorded.get("sha256") != facts["sha256"]:
        raise RewheelError(
            f"{wheel.name}: its build record names sha256 {recorded.get('sha256')}, the file has {facts['sha256']}"
        )
    job = record.get("job") or {}
    inputs = record.get("inputs") or {}
    key_inputs = record.get("key_inputs") or {}
    test = key_inputs.get("test") or {}
    target = str(job.get("target") or "")
    backend = record.get("backend") or {}
    return {
        "format": PROOF_FORMAT,
        "file": facts,
        "origin": {"kind": BUILT, "job": job.get("id"), "build_key": record.get("key")},
        "target": target,
        "python": job.get("python"),
        "recipe": {
            "name": job.get("recipe"),
            "path": _shown_path((inputs.get("recipe") or {}).get("path")),
            "sha256": (inputs.get("recipe") or {}).get("sha256"),
        },
        "source": inputs.get("source"),
        "patches": inputs.get("patches") or [],
        "build": {
            "backend": backend.get("name"),
            "reason": backend.get("reason"),
            "tool_versions": record.get("tool_versions") or {},
            "repair": record.get("repair"),
            "features_disabled": record.get("features_disabled") or [],
        },
        "verify": [_verify_entry(record.get("verify"), target, "build")],
        "smoke": _smoke_entry(record.get("smoke"), test.get("command")),
        "timestamps": {"built": record.get("built_at"), "recorded": now()},
    }


def for_upstream(
    wheel: Path,
    *,
    index_url: str | None,
    target: str,
    python: str | None,
    verify_report: dict[str, Any],
    smoke: dict[str, Any] | None,
    verified_at: str,
) -> dict[str, Any]:
    """The proof of an upstream wheel that `build -r` admitted: its origin and its own verify and smoke."""
    facts = _file_facts(wheel)
    return {
        "format": PROOF_FORMAT,
        "file": facts,
        "origin": {"kind": UPSTREAM, "index_url": strip_credentials(index_url), "sha256": facts["sha256"]},
        "target": target,
        "python": python,
        "recipe": None,
        "source": None,
        "patches": [],
        "build": None,
        "verify": [_verify_entry(verify_report, target, "build -r")],
        "smoke": _smoke_entry(smoke, None),
        "timestamps": {"verified": verified_at, "recorded": now()},
    }


def for_gate(wheel: Path, *, target: str, how: str) -> dict[str, Any]:
    """The proof of a wheel published with no record: the publish gate cleared it (`how`), nothing more."""
    facts = _file_facts(wheel)
    gate = {"target": target, "ok": True, "by": how, "findings": [], "warnings": [], "binaries_checked": None}
    return {
        "format": PROOF_FORMAT,
        "file": facts,
        "origin": {"kind": PUBLISHED},
        "target": target,
        "python": None,
        "recipe": None,
        "source": None,
        "patches": [],
        "build": None,
        "verify": [gate],
        "smoke": _smoke_entry(
            {"status": "not-run", "message": "published without a build record: not imported by rewheel"},
            None,
        ),
        "timestamps": {"recorded": now()},
    }


def strip_credentials(url: str | None) -> str | None:
    """An index URL as it may be shown: no user, no password, no query or fragment (tokens live there)."""
    if not url:
        return url
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def proof_for_publishing(wheel: Path, *, target: str, how: str) -> dict[str, Any]:
    """The record a wheel enters the index with: its own proof file beside it (`<wheel>.proof.json`), else
    one made from its build record (`<wheel>.build.json`), else the publish gate's verdict alone."""
    from pipeline.builders.records import record_path

    beside = proof_path(wheel)
    if beside.is_file():
        document = load(beside)
        if document["file"]["sha256"] != sha256_file(wheel):
            raise RewheelError(f"{beside}: names sha256 {document['file']['sha256']}, not this file's")
        return document
    record = record_path(wheel)
    if record.is_file():
        try:
            data = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RewheelError(f"{record}: not a readable build record: {exc}") from None
        return from_build_record(wheel, data)
    return for_gate(wheel, target=target, how=how)


def encode(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=False, default=str) + "\n").encode("utf-8")


def load(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RewheelError(f"{path}: not a readable proof record: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("file"), dict):
        raise RewheelError(f"{path}: not a proof record (no file object)")
    return document


def schema() -> dict[str, Any]:
    from importlib.resources import files

    text = files("pipeline").joinpath("resources/proof.schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def validate(document: dict[str, Any]) -> list[str]:
    """Schema violations of a proof record, as readable lines (empty when it conforms)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(record)'}: {error.message}"
        for error in validator.iter_errors(document)
    ]


@dataclass
class Verdict:
    """What one proof says about its file, for a matrix cell."""

    origin: str  # built | upstream | published | none
    verified: bool | None
    imported: bool | None
    why_not: str  # the first finding, the runtime that is missing, or the import failure; "" when proven

    @property
    def label(self) -> str:
        if self.origin == "none":
            return "no proof record"
        where = {BUILT: "built here", UPSTREAM: "upstream", PUBLISHED: "published"}.get(
            self.origin, self.origin
        )
        if self.verified is False:
            return f"{where}, verify failed"
        parts = [where, "verified" if self.verified else "verify not recorded"]
        parts.append("imported" if self.imported else "not imported")
        return ", ".join(parts)


def verdict(document: dict[str, Any] | None) -> Verdict:
    if not document:
        return Verdict("none", None, None, "published before proof records existed")
    origin = str((document.get("origin") or {}).get("kind") or "none")
    results = document.get("verify") or []
    oks = [r.get("ok") for r in results]
    verified = None if not oks or any(o is None for o in oks) else all(bool(o) for o in oks)
    smoke = document.get("smoke") or {}
    status = smoke.get("status")
    why = ""
    if verified is False:
        first: dict[str, Any] = next((f for r in results for f in r.get("findings") or []), {})
        why = f"{first.get('code')}: {first.get('message')}" if first else "verify failed"
    elif status != "passed":
        why = str(smoke.get("message") or status or "not smoke-tested")
    return Verdict(origin, verified, status == "passed", why)


def prove_upstream(
    wheel: Path,
    *,
    index_url: str | None,
    target: str,
    python: str | None,
    smoke: bool = True,
    constraints: list[str] | None = None,
) -> dict[str, Any]:
    """Verify an upstream wheel for `target` and import it on the target's runtime (its dependencies held to
    `constraints`, the resolved set it is published with): its proof record."""
    from pipeline.smoke import smoke_wheel
    from pipeline.verify import verify_wheel

    report = verify_wheel(wheel, target)
    verify_json: dict[str, Any] = report.to_json()
    verify_json["ok"] = bool(report.ok)
    verified_at = now()
    smoke_json: dict[str, Any]
    if not smoke:
        smoke_json = {"status": "skipped", "message": "--no-smoke"}
    elif not report.ok:
        smoke_json = {"status": "skipped", "message": "verify failed"}
    else:
        try:
            smoke_json = smoke_wheel(wheel, target, constraints=constraints).to_json()
        except RewheelError as exc:  # no runtime could be prepared: recorded, not a verdict on the wheel
            smoke_json = {"status": "error", "message": str(exc)}
    return for_upstream(
        wheel,
        index_url=index_url,
        target=target,
        python=python,
        verify_report=verify_json,
        smoke=smoke_json,
        verified_at=verified_at,
    )


def upstream_proofs(
    upstream: list[UpstreamWheel],
    target: str,
    python: str,
    *,
    smoke: bool,
    constraints: list[str] | None = None,
) -> dict[Path, dict[str, Any]]:
    """Proof records for the upstream wheels `build -r` admitted (wheelhouse.UpstreamWheel items)."""
    return {
        u.path: prove_upstream(
            u.path,
            index_url=u.gap.file.url if u.gap.file else None,
            target=target,
            python=python,
            smoke=smoke,
            constraints=constraints,
        )
        for u in upstream
        if u.ok
    }
